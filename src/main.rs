//! The `wsscale` binary: parse, run, map errors to exit codes (see `wsscale::cli`).

fn main() {
    std::process::exit(wsscale::cli::main());
}
