//! Command-line contract of the `ferrolb` binary (names and defaults are in the design).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "ferrolb",
    version,
    about = "LoadBalancer Services for bare-metal and kind clusters"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Allocate IPs from the pools and write Service status.
    Controller(ControllerArgs),
    /// Per-node agent: elect one node per IP and answer ARP for it.
    Speaker(SpeakerArgs),
    /// Validate a ConfigMap manifest or bare config file; exit 0 if valid, 1 otherwise.
    CheckConfig(CheckConfigArgs),
    /// Translate another load balancer's configuration into a ferrolb-config ConfigMap.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Pools, LoadBalancer Services, who announces them and what is wrong (also runs as the
    /// kubectl plugin `kubectl ferrolb status`).
    Status(StatusArgs),
}

/// Options shared by both daemons for reaching the cluster and the config.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// kubeconfig to use; default: $KUBECONFIG, then in-cluster, then ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the pool ConfigMap and of FerroLB's Leases.
    #[arg(long, default_value = "ferrolb-system")]
    pub namespace: String,
    /// Name of the pool ConfigMap.
    #[arg(long, default_value = "ferrolb-config")]
    pub config_map: String,
}

/// `ferrolb controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Cluster access.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Only handle Services of this loadBalancerClass (default: only Services without a class).
    #[arg(long)]
    pub lb_class: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub metrics_addr: SocketAddr,
    /// Take part in leader election on Lease `ferrolb-controller` (disable only for one replica).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long the leader's lease is valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_lease_duration: std::time::Duration,
    /// A leader that could not renew for this long steps down (must be below the duration).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_renew_deadline: std::time::Duration,
    /// How often to try to acquire or renew the lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_retry_period: std::time::Duration,
}

/// `ferrolb speaker`.
#[derive(Debug, Clone, clap::Args)]
pub struct SpeakerArgs {
    /// This node's name.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Cluster access.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long a speaker's lease stays valid without renewal (e.g. 3s, 2500ms).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub lease_duration: std::time::Duration,
    /// How often the speaker renews its lease.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub lease_renew: std::time::Duration,
    /// Only announce Services of this loadBalancerClass (default: only Services without a
    /// class), matching the controller's `--lb-class`.
    #[arg(long)]
    pub lb_class: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7473")]
    pub metrics_addr: SocketAddr,
    /// UDP port for heartbeats between speakers (fast failure detection); 0 turns them off.
    #[arg(long, default_value_t = ferrolb_core::heartbeat::DEFAULT_PORT)]
    pub heartbeat_port: u16,
}

/// `ferrolb check-config FILE`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckConfigArgs {
    /// A ConfigMap manifest (YAML or JSON) or a bare config file.
    pub file: PathBuf,
}

/// `ferrolb status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// kubeconfig to use; default: $KUBECONFIG, then in-cluster, then ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// FerroLB's namespace (pool ConfigMap, speaker Leases).
    #[arg(long, short = 'n', default_value = "ferrolb-system")]
    pub namespace: String,
    /// Name of the pool ConfigMap.
    #[arg(long, default_value = "ferrolb-config")]
    pub config_map: String,
    /// Only Services of this loadBalancerClass, as the daemons' `--lb-class`.
    #[arg(long)]
    pub lb_class: Option<String>,
    /// Output format: the default table, `wide`, or `json`.
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<StatusOutput>,
}

/// `ferrolb status -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusOutput {
    /// More columns, every problem in full, and the speakers' leases.
    Wide,
    /// Machine-readable: `pools` and `services` with the keys in the design.
    Json,
}

/// `ferrolb import ...`: one subcommand per source format.
#[derive(Debug, Clone, Subcommand)]
pub enum ImportCommand {
    /// MetalLB >= 0.13 custom resources (IPAddressPool, L2Advertisement, BGPPeer,
    /// BGPAdvertisement, Community; multi-document YAML or a List) to a ferrolb-config
    /// ConfigMap manifest on stdout; fields not carried over are warnings on stderr.
    Metallb(ImportMetallbArgs),
}

/// `ferrolb import metallb FILE...`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportMetallbArgs {
    /// Files as `kubectl get ipaddresspools,l2advertisements,... -A -o yaml` writes them
    /// (`-` reads standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Parses a duration flag with the ConfigMap's grammar (`500ms`, `3s`, `1.5s`, `1m30s`), so a
/// value that works in `l2.garp` works on the command line too.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    ferrolb_core::config::duration::parse(text).map_err(|why| format!("duration {text:?}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1100ms"), Ok(Duration::from_millis(1100)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3").unwrap_err().contains("missing unit"));
        assert!(parse_duration("3d").unwrap_err().contains("unknown unit"));
    }

    /// The flags and the ConfigMap share one grammar: `1m30s` used to fail on the command line
    /// while `interval: 1m30s` worked.
    #[test]
    fn duration_flags_accept_every_config_duration() {
        for text in ["1m30s", "1h", "250us", ".5s", "0"] {
            assert_eq!(
                parse_duration(text),
                ferrolb_core::config::duration::parse(text),
                "{text}"
            );
        }
        let cli = Cli::try_parse_from([
            "ferrolb",
            "speaker",
            "--node-name",
            "n1",
            "--lease-duration",
            "1m30s",
        ])
        .expect("1m30s is a valid duration");
        assert!(
            matches!(cli.command, Command::Speaker(ref s) if s.lease_duration == Duration::from_secs(90))
        );
    }

    #[test]
    fn cli_parses_design_flags() {
        let cli = Cli::try_parse_from([
            "ferrolb",
            "speaker",
            "--node-name",
            "n1",
            "--lease-duration",
            "3s",
            "--lease-renew",
            "1s",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Speaker(ref s) if s.node_name == "n1"));
        let cli =
            Cli::try_parse_from(["ferrolb", "controller", "--leader-elect", "false"]).unwrap();
        assert!(matches!(cli.command, Command::Controller(ref c) if !c.leader_elect));
    }
}
