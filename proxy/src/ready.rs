//! The configuration made ready: the objects a validated [`Config`] describes, built once
//! at start. [`Config`] stays a plain description (the chart's tests parse it without
//! opening a connection or reading a key); this is what serving needs.

use crate::config::{Config, RouteConfig};
use crate::identity::Verifier;
use crate::metrics::{Metrics, RouteMetrics};
use crate::route::RouteTable;
use crate::upstream::{self, credential::Credential, UpstreamClient};
use anyhow::{Context, Result};

/// A configured route with its ready objects.
pub struct Route {
    pub config: RouteConfig,
    pub client: UpstreamClient,
    pub credential: Option<Credential>,
    pub metrics: RouteMetrics,
}

/// Everything the configuration describes that serving uses, built.
pub struct Ready {
    /// In configuration order; [`RouteTable`] indices point into it.
    pub routes: Vec<Route>,
    pub table: RouteTable,
    /// The acting user's verifier, when identity is configured (approver JWTs reuse its
    /// key sources).
    pub identity: Option<Verifier>,
}

impl Ready {
    /// Builds each route's upstream client and credential, the route table, and the
    /// identity verifier (which may start fetching its key set).
    pub fn build(config: &Config, metrics: &Metrics) -> Result<Ready> {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                Ok(Route {
                    client: upstream::client(r)?,
                    credential: r
                        .credential
                        .as_ref()
                        .map(|c| Credential::build(c, &r.name, metrics))
                        .transpose()
                        .with_context(|| format!("route {:?}: credential", r.name))?,
                    metrics: metrics.for_route(&r.name),
                    config: r.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let table = RouteTable::new(
            config
                .routes
                .iter()
                .map(|r| (r.prefix.as_deref(), r.hosts.as_slice())),
        );
        let identity = config.identity.as_ref().map(Verifier::new).transpose()?;
        Ok(Ready {
            routes,
            table,
            identity,
        })
    }
}
