//! blippcmd's UNIS-client mode: reading and writing a blipp service's
//! record in UNIS, as the original's blippcmd `put` did. blippd follows a
//! changed configuration at its next poll of UNIS (or at once after
//! `blippcmd reload --unis-poll`).
//!
//! What is written is validated first with the same schema and rules as a
//! configuration file, so a bad edit never reaches the agents that read
//! the service.

use serde_json::Value;

use super::UnisError;
use super::client::Endpoint;
use super::record;
use crate::config::edit::Edit;
use crate::config::{self, ConfigError};

/// Why a service could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// UNIS failed.
    #[error(transparent)]
    Unis(#[from] UnisError),
    /// No service matched.
    #[error("no service in UNIS {0}")]
    NotFound(String),
    /// The configuration would be invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// How to find the service.
#[derive(Clone, Debug)]
pub enum Which {
    /// By id.
    Id(String),
    /// By name, on the node with this URN (as blippd registers it).
    NameOnNode {
        /// The service's `name` (blipp's default is `blipp`).
        name: String,
        /// The node's URN.
        urn: String,
    },
}

/// The newest version of the service.
pub async fn get(unis: &Endpoint, which: &Which) -> Result<Value, ServiceError> {
    let found = match which {
        Which::Id(id) => unis.get_list(&format!("/services/{id}"), &[]).await?,
        Which::NameOnNode { name, urn } => {
            let nodes = unis
                .get_list("/nodes", &[("urn", urn), ("unique", "true")])
                .await?;
            let Some(href) = nodes
                .first()
                .and_then(|n| n.get("selfRef"))
                .and_then(Value::as_str)
            else {
                return Err(ServiceError::NotFound(format!(
                    "for this host: no node with urn {urn} (is blippd registered? --service-id ID names the service)"
                )));
            };
            unis.get_list(
                "/services",
                &[
                    ("name", name.as_str()),
                    ("runningOn.href", href),
                    ("unique", "true"),
                ],
            )
            .await?
        }
    };
    found.into_iter().next().ok_or_else(|| {
        ServiceError::NotFound(match which {
            Which::Id(id) => format!("with id {id}"),
            Which::NameOnNode { name, .. } => format!("named {name} on this host's node"),
        })
    })
}

/// Writes `service` (a whole service object, e.g. what [`get`] returned,
/// edited) after checking it as blippd would. `origin` names it in errors.
pub async fn put(unis: &Endpoint, service: &Value, origin: &str) -> Result<String, ServiceError> {
    config::schema::validate(origin, service)?;
    config::resolve(service.clone())?;
    let Some(id) = service.get("id").and_then(Value::as_str) else {
        return Err(ConfigError::invalid(
            origin,
            "/id",
            &Value::Null,
            "the service's id (blippcmd --unis URL service get prints the record with it)",
        )
        .into());
    };
    let body = record::without_server_fields(service);
    unis.put(&format!("/services/{id}"), &body, "service")
        .await?;
    Ok(id.to_owned())
}

/// Reads the service, sets or removes the value at `edit.pointer`, checks
/// and writes it back. Unlike an edit through the control socket, any
/// part of the configuration may change: blippd follows the probes and
/// the status at its next poll, service-wide settings at its next start.
pub async fn edit(unis: &Endpoint, which: &Which, edit: &Edit) -> Result<Value, ServiceError> {
    let mut service = get(unis, which).await?;
    edit.apply(&mut service)?;
    put(unis, &service, "edited service").await?;
    Ok(service)
}
