//! `ferrolb status` (also run as the kubectl plugin `kubectl-ferrolb status`): reads the
//! cluster once and says, per pool and per LoadBalancer Service, what FerroLB is doing and
//! what is wrong. Every read is separate, so a read RBAC forbids only blanks what it feeds.

mod bgp;
pub mod render;
pub mod report;

use std::collections::BTreeMap;
use std::process::ExitCode;

use ferrolb_core::config::parse_config_map_data;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::Client;

use crate::cli::{StatusArgs, StatusOutput};

/// A list error in words: "forbidden (RBAC)" rather than a wrapped HTTP status.
fn why(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            format!("forbidden by RBAC ({})", s.message)
        }
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

async fn list<K>(api: Api<K>) -> report::Read<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(why)
}

/// The pool config in force, as the daemons read it.
async fn config(
    client: &Client,
    args: &StatusArgs,
) -> Result<ferrolb_core::config::Config, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &args.namespace);
    let cm = api
        .get_opt(&args.config_map)
        .await
        .map_err(why)?
        .ok_or_else(|| format!("ConfigMap {}/{} not found", args.namespace, args.config_map))?;
    let data: BTreeMap<String, String> = cm.data.unwrap_or_default();
    parse_config_map_data(&data).map(|p| p.config).map_err(|e| {
        let first = e.0.first().map(ToString::to_string).unwrap_or_default();
        format!(
            "ConfigMap {}/{} is invalid ({} error(s), first: {first}); run `ferrolb check-config`",
            args.namespace,
            args.config_map,
            e.0.len()
        )
    })
}

/// Reads everything, prints the report; exit 0 when it could be produced at all.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = crate::kube_client::connect(args.kubeconfig.as_deref(), "status", "cli").await?;
    let (config, services, leases, nodes, slices, events) = tokio::join!(
        config(&client, &args),
        list(Api::<Service>::all(client.clone())),
        list(Api::<Lease>::namespaced(client.clone(), &args.namespace)),
        list(Api::<Node>::all(client.clone())),
        list(Api::<EndpointSlice>::all(client.clone())),
        list(Api::<Event>::all(client.clone())),
    );
    if let Err(e) = &services {
        // Nothing useful can be said without the Services; fail clearly.
        if !e.starts_with("forbidden") {
            anyhow::bail!("cannot reach the cluster: {e}");
        }
    }
    let r = report::build(&report::Inputs {
        config,
        services,
        leases,
        nodes,
        slices,
        events,
        now: jiff::Timestamp::now(),
        lb_class: args.lb_class.clone(),
    });
    match args.output {
        Some(StatusOutput::Json) => {
            println!("{}", render::json(&r));
            for n in &r.notes {
                eprintln!("warning: {n}");
            }
        }
        Some(StatusOutput::Wide) => print!("{}", render::text(&r, true)),
        None => print!("{}", render::text(&r, false)),
    }
    Ok(ExitCode::SUCCESS)
}
