//! `kube-sim --listen 127.0.0.1:0 [--kubeconfig-out PATH]`: runs the emulator until Ctrl-C or
//! SIGTERM and prints its URL as the first line of stdout.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use kube_sim::{KubeSim, SimOptions};

/// Command line of the kube-sim binary.
#[derive(Debug, Parser)]
#[command(
    name = "kube-sim",
    about = "A Kubernetes API server emulator over HTTP, for tests"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for `kubectl --kubeconfig` here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Changes kept for watch resumption.
    #[arg(long, default_value_t = 100_000)]
    history_limit: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let sim = KubeSim::start_with(SimOptions {
        listen: args.listen,
        kubeconfig_out: args.kubeconfig_out,
        history_limit: args.history_limit,
        ..SimOptions::default()
    })
    .await?;
    println!("{}", sim.url());
    eprintln!(
        "kube-sim serving at {}; kubeconfig: {}",
        sim.url(),
        sim.kubeconfig_path().display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
