//! The `ferrolb` binary: parses the command line, sets up logging, and runs one component.

use anyhow::Result;
use clap::Parser;
use ferrolb::cli::{Cli, Command, LogFormat};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Controller(_) => anyhow::bail!("ferrolb controller: not implemented yet"),
        Command::Speaker(_) => anyhow::bail!("ferrolb speaker: not implemented yet"),
        Command::CheckConfig(_) => anyhow::bail!("ferrolb check-config: not implemented yet"),
    }
}
