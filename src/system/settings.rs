//! What wsscale knows about each kernel setting it checks ([`super::preflight`]) or changes
//! ([`super::tune`]): where the setting lives, whether a Kubernetes pod may set it, and how
//! to write the fix.
//!
//! **Scope.** Most `net.*` settings belong to a network namespace: a container or pod has its
//! own copy and may change it without touching the host. `fs.*`, `vm.*`, most `kernel.*`,
//! and a few `net.*` tables (`tcp_mem`, `tcp_max_orphans`, `netdev_max_backlog`, the
//! conntrack table size) are one value for the whole node: inside a child network namespace
//! they are either invisible (`tcp_mem`…) or visible but shared with the host (`fs.*`), or
//! read-only (`nf_conntrack_max`, `nf_conntrack_buckets`). Changing those from a container
//! would tune the node behind its operator's back, so `tune` refuses and says so.
//!
//! **Kubernetes.** A pod's `securityContext.sysctls` accepts namespaced sysctls only. The
//! kubelet allows the "safe" ones by default (`ip_local_port_range` always; `tcp_fin_timeout`
//! since 1.29; `tcp_rmem`/`tcp_wmem` since 1.32); other namespaced ones (`somaxconn`,
//! `tcp_tw_reuse`…) need the node's kubelet to list them in `--allowed-unsafe-sysctls`.

/// Which side of a test this host plays: it decides which checks matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Opens the test connections (`wsscale run`, agents).
    #[default]
    Loadgen,
    /// Accepts them (the gateway under test, or `wsscale serve`).
    Gateway,
}

impl Role {
    /// `"loadgen"` / `"gateway"`.
    pub fn label(self) -> &'static str {
        match self {
            Role::Loadgen => "loadgen",
            Role::Gateway => "gateway",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s.to_ascii_lowercase().as_str() {
            "loadgen" | "load-generator" | "client" => Ok(Role::Loadgen),
            "gateway" | "server" => Ok(Role::Gateway),
            _ => Err(format!(
                "unknown role {s:?}: use loadgen (this host opens the connections) or gateway \
                 (this host accepts them)"
            )),
        }
    }
}

/// Where a setting lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One value for the whole node (host), whatever namespace reads it.
    Node,
    /// One value per network namespace (container, pod).
    NetNs,
}

impl Scope {
    /// `"node"` / `"netns"`, as in the preflight JSON.
    pub fn label(self) -> &'static str {
        match self {
            Scope::Node => "node",
            Scope::NetNs => "netns",
        }
    }
}

/// `net.*` settings that are nevertheless node-wide (initial network namespace only, or
/// read-only outside it).
const NODE_WIDE_NET: &[&str] = &[
    "net.ipv4.tcp_mem",
    "net.ipv4.tcp_max_orphans",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
    "net.nf_conntrack_max",
];

/// The scope of sysctl `name` (see the module docs).
pub fn scope_of(name: &str) -> Scope {
    if name.starts_with("net.") && !NODE_WIDE_NET.contains(&name) {
        Scope::NetNs
    } else {
        Scope::Node
    }
}

/// How a Kubernetes pod can get a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K8s {
    /// In the kubelet's safe list (since the given Kubernetes version, `None` = always).
    Safe(Option<&'static str>),
    /// Namespaced, but the kubelet must allow it (`--allowed-unsafe-sysctls`).
    Unsafe,
    /// Node-level: not settable from a pod spec.
    NodeLevel,
}

/// How Kubernetes treats sysctl `name`.
pub fn k8s_of(name: &str) -> K8s {
    match name {
        "net.ipv4.ip_local_port_range"
        | "net.ipv4.tcp_syncookies"
        | "net.ipv4.ip_unprivileged_port_start"
        | "net.ipv4.ping_group_range" => K8s::Safe(None),
        "net.ipv4.ip_local_reserved_ports" => K8s::Safe(Some("1.27")),
        "net.ipv4.tcp_fin_timeout"
        | "net.ipv4.tcp_keepalive_time"
        | "net.ipv4.tcp_keepalive_intvl"
        | "net.ipv4.tcp_keepalive_probes" => K8s::Safe(Some("1.29")),
        "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => K8s::Safe(Some("1.32")),
        _ if scope_of(name) == Scope::NetNs => K8s::Unsafe,
        _ => K8s::NodeLevel,
    }
}

/// `sysctl -w name=value`, quoting multi-field values: `sysctl -w
/// net.ipv4.ip_local_port_range="1024 65535"`.
pub fn sysctl_w(name: &str, value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("sudo sysctl -w {name}=\"{value}\"")
    } else {
        format!("sudo sysctl -w {name}={value}")
    }
}

/// The fix lines for setting `name` to `value`: the `sysctl -w` command, where to run it
/// when it is node-wide and we are in a child network namespace, how to persist it, and the
/// Kubernetes way.
pub fn fix_lines(name: &str, value: &str, initial_netns: bool) -> Vec<String> {
    let mut lines = vec![sysctl_w(name, value)];
    if scope_of(name) == Scope::Node && !initial_netns {
        lines.push(format!(
            "{name} is node-wide: run that on the node (host), not in this container / network \
             namespace"
        ));
    }
    lines.push(format!(
        "persist: `{name} = {value}` in /etc/sysctl.d/90-wsscale.conf (see sysctl/*.conf), \
         or `wsscale tune --apply`"
    ));
    lines.extend(k8s_lines(name, value));
    lines
}

/// The Kubernetes part of a fix (a pod `securityContext.sysctls` snippet when a pod may set
/// it).
pub fn k8s_lines(name: &str, value: &str) -> Vec<String> {
    let snippet = |note: String| {
        vec![
            format!("Kubernetes pod spec{note}:"),
            "  securityContext:".to_owned(),
            "    sysctls:".to_owned(),
            format!("    - name: {name}"),
            format!("      value: \"{value}\""),
        ]
    };
    match k8s_of(name) {
        K8s::Safe(None) => snippet(" (safe sysctl, allowed by default)".to_owned()),
        K8s::Safe(Some(since)) => snippet(format!(
            " (safe sysctl since Kubernetes {since}; older clusters: kubelet \
             --allowed-unsafe-sysctls={name})"
        )),
        K8s::Unsafe => snippet(format!(
            " (namespaced but unsafe: the node's kubelet must run with \
             --allowed-unsafe-sysctls={name})"
        )),
        K8s::NodeLevel => vec![format!(
            "Kubernetes: {name} is node-level; set it on the node (node image, or a privileged \
             DaemonSet), not in a pod spec"
        )],
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(scope_of("net.ipv4.ip_local_port_range"), Scope::NetNs);
        assert_eq!(scope_of("net.core.somaxconn"), Scope::NetNs);
        assert_eq!(scope_of("net.ipv4.tcp_mem"), Scope::Node);
        assert_eq!(scope_of("net.netfilter.nf_conntrack_max"), Scope::Node);
        assert_eq!(scope_of("fs.file-max"), Scope::Node);
        assert_eq!(scope_of("fs.epoll.max_user_watches"), Scope::Node);
    }

    #[test]
    fn kubernetes_classes() {
        assert_eq!(k8s_of("net.ipv4.ip_local_port_range"), K8s::Safe(None));
        assert_eq!(k8s_of("net.ipv4.tcp_fin_timeout"), K8s::Safe(Some("1.29")));
        assert_eq!(k8s_of("net.core.somaxconn"), K8s::Unsafe);
        assert_eq!(k8s_of("fs.nr_open"), K8s::NodeLevel);
        let lines = k8s_lines("net.ipv4.ip_local_port_range", "1024 65535");
        assert!(lines.iter().any(|l| l.contains("securityContext:")));
        assert!(lines.iter().any(|l| l.contains("value: \"1024 65535\"")));
    }

    #[test]
    fn sysctl_w_quotes_multi_field_values() {
        assert_eq!(
            sysctl_w("net.ipv4.ip_local_port_range", "1024 65535"),
            "sudo sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\""
        );
        assert_eq!(
            sysctl_w("fs.nr_open", "2097152"),
            "sudo sysctl -w fs.nr_open=2097152"
        );
    }
}
