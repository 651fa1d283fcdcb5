//! Command line: clap definitions ([`args`]), human-unit parsers ([`units`]) and dispatch.

pub mod args;
pub mod units;

pub fn main() -> i32 {
    0
}
