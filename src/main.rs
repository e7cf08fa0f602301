//! The `ferrolb` binary: parses the command line, sets up logging, and runs one component.

use std::process::ExitCode;

use anyhow::{Context, Result};
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

fn check_config(path: &std::path::Path) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match ferrolb_core::config::parse_file(&text) {
        Ok(parsed) => {
            println!("{}: valid", path.display());
            print!("{}", ferrolb_core::config::summary(&parsed.config));
            for w in &parsed.warnings {
                println!("warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{}: invalid ({} error(s))", path.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `ferrolb import metallb`: the manifest on stdout, every field not carried over on stderr;
/// exit 1 only when an input cannot be read.
fn import_metallb(files: &[std::path::PathBuf]) -> Result<ExitCode> {
    let mut inputs = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = if name == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read standard input")
        } else {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))
        };
        match text {
            Ok(t) => inputs.push((name, t)),
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    match ferrolb_core::import::metallb(&inputs) {
        Ok(imported) => {
            print!("{}", imported.manifest());
            for w in &imported.warnings {
                eprintln!("warning: {w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::CheckConfig(args) => check_config(&args.file),
        Command::Import(ferrolb::cli::ImportCommand::Metallb(args)) => import_metallb(&args.files),
        Command::Status(args) => ferrolb::status::run(args).await,
        Command::Controller(args) => {
            let shutdown = ferrolb::signals::shutdown_token()?;
            ferrolb::controller::run(args, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Speaker(args) => {
            let shutdown = ferrolb::signals::shutdown_token()?;
            ferrolb::speaker::run(args, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
