//! The arbiter's side of the control socket: the running configuration as
//! layers (the base from the file or UNIS, the edits on top), and the
//! answer to each command.
//!
//! Every change goes through [`Supervisor::apply`], the path a
//! configuration changed in UNIS takes, but strictly: a change that makes
//! the configuration invalid, or one of its probes impossible to build, is
//! refused as a whole and nothing stops.

use std::time::Instant;

use serde_json::Value;

use super::supervisor::Supervisor;
use crate::config::edit::{self, Edit, Edits};
use crate::config::{self, Config, ConfigError, LocalSource, Status, schema};
use crate::control::protocol::{Changes, Failure, ProbeAction};
use crate::control::{Command, CommandError};
use crate::status::{StatusReport, TopReport};

/// The running configuration and where it came from.
pub(super) struct Steer {
    /// The configuration from the file (and UNIS).
    base: Config,
    /// Edits made through the control socket.
    edits: Edits,
    /// `base` with `edits` applied: what runs.
    current: Config,
    /// What `reload` reads.
    reload: Option<LocalSource>,
    started: Instant,
    /// A command changed which probes run.
    steered: bool,
}

impl From<Failure> for CommandError {
    fn from(f: Failure) -> Self {
        CommandError::Build {
            probe: f.probe,
            error: f.error,
        }
    }
}

/// `base` with `edits` applied, validated and resolved. Probes that the
/// base has without a configuration entry (measurements of others adopted
/// with `-e use`) are kept.
fn layered(base: &Config, edits: &Edits) -> Result<Config, ConfigError> {
    let doc = edits.apply(&base.service)?;
    schema::validate(edit::ORIGIN, &doc)?;
    let mut config = config::resolve(doc)?;
    let listed = |name: &str| {
        base.service
            .pointer("/properties/configurations/probes")
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(name))
    };
    for p in &base.probes {
        if !listed(&p.name) && !config.probes.iter().any(|q| q.name == p.name) {
            config.probes.push(p.clone());
        }
    }
    Ok(config)
}

impl Steer {
    pub(super) fn new(config: &Config, reload: Option<LocalSource>) -> Self {
        Self {
            base: config.clone(),
            edits: Edits::default(),
            current: config.clone(),
            reload,
            started: Instant::now(),
            steered: false,
        }
    }

    /// Whether a command changed which probes run.
    pub(super) fn steered(&self) -> bool {
        self.steered
    }

    /// A new base (from UNIS) with the edits on top; edits that no longer
    /// fit it are dropped, saying why. Returns what should run now.
    pub(super) fn rebase(&mut self, base: Config) -> Config {
        self.base = base;
        self.current = if self.edits.is_empty() {
            self.base.clone()
        } else {
            match layered(&self.base, &self.edits) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, edits = self.edits.len(), "the control socket's edits do not fit the new configuration and are dropped");
                    self.edits = Edits::default();
                    self.base.clone()
                }
            }
        };
        self.current.clone()
    }

    /// Answers one command.
    pub(super) async fn handle(&mut self, command: Command, sup: &mut Supervisor) {
        match command {
            Command::Status(reply) => {
                let _ = reply.send(self.status(sup));
            }
            Command::Config(reply) => {
                let _ = reply.send(self.current.service.clone());
            }
            Command::Probe {
                action,
                name,
                reply,
            } => {
                let result = self.probe(action, &name, sup).await;
                let _ = reply.send(result);
            }
            Command::Edit { edit, reply } => {
                let result = self.edit(edit, sup).await;
                let _ = reply.send(result);
            }
            Command::Reload(reply) => {
                let result = self.reload(sup).await;
                let _ = reply.send(result);
            }
            Command::Tail {
                probe,
                count,
                reply,
            } => {
                let result = match sup.health.get(&probe) {
                    Some(h) => Ok(h.tail(count)),
                    None if self.current.probes.iter().any(|p| p.name == probe) => {
                        Err(CommandError::NotRunning {
                            probe,
                            why: "it has not run since blippd started",
                        })
                    }
                    None => Err(CommandError::UnknownProbe(probe)),
                };
                let _ = reply.send(result);
            }
            Command::Top(reply) => {
                let series = sup
                    .health
                    .iter()
                    .flat_map(|(name, h)| h.series(name))
                    .collect();
                let _ = reply.send(TopReport {
                    status: self.status(sup),
                    series,
                });
            }
            Command::UnisPoll(reply) => {
                let _ = reply.send(Err(CommandError::Unavailable(
                    "this blippd has no UNIS URL",
                )));
            }
        }
    }

    fn status(&self, sup: &Supervisor) -> StatusReport {
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            service_status: match self.current.status {
                Status::On => "ON",
                Status::Off => "OFF",
            }
            .to_owned(),
            edits: self.edits.len(),
            probes: sup.report(&self.current),
            sink: None,
            refused: self.base.refused.clone(),
            remote_write: crate::report::remote_write::sink::reports(),
        }
    }

    /// Makes `config` (with `edits`) the running configuration, strictly.
    async fn switch(
        &mut self,
        base: Option<Config>,
        edits: Edits,
        config: Config,
        sup: &mut Supervisor,
    ) -> Result<Changes, CommandError> {
        let changes = sup.apply(&config, true).await?;
        if let Some(base) = base {
            self.base = base;
        }
        self.edits = edits;
        self.current = config;
        if !(changes.started.is_empty()
            && changes.stopped.is_empty()
            && changes.restarted.is_empty())
        {
            self.steered = true;
        }
        Ok(changes)
    }

    async fn edit(&mut self, edit: Edit, sup: &mut Supervisor) -> Result<Changes, CommandError> {
        let edits = self.edits.with(edit)?;
        let config = layered(&self.base, &edits)?;
        self.switch(None, edits, config, sup).await
    }

    async fn probe(
        &mut self,
        action: ProbeAction,
        name: &str,
        sup: &mut Supervisor,
    ) -> Result<Changes, CommandError> {
        let Some(probe_status) = self
            .current
            .probes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.status)
        else {
            return Err(CommandError::UnknownProbe(name.to_owned()));
        };
        let status = |s: &str| Edit {
            pointer: edit::probe_pointer(name, "status"),
            value: Some(Value::String(s.to_owned())),
        };
        match action {
            ProbeAction::Stop if probe_status == Status::Off => Ok(Changes {
                note: Some(format!("{name} is already OFF")),
                ..Changes::default()
            }),
            ProbeAction::Stop => self.edit(status("OFF"), sup).await,
            ProbeAction::Start if self.current.status == Status::Off => {
                Err(CommandError::Unavailable(
                    "the service's status is OFF: `blippcmd config set /status '\"ON\"'` starts every probe",
                ))
            }
            ProbeAction::Start if probe_status == Status::Off => self.edit(status("ON"), sup).await,
            ProbeAction::Start => match sup.tasks.get(name) {
                Some(t) if !t.finished => Ok(Changes {
                    note: Some(format!("{name} is already running")),
                    ..Changes::default()
                }),
                // Finished its schedule, or could not be built before:
                // build it again.
                _ => self.restart(name, sup).await,
            },
            ProbeAction::Restart => match sup.tasks.get(name) {
                Some(_) => self.restart(name, sup).await,
                None => Err(CommandError::NotRunning {
                    probe: name.to_owned(),
                    why: if probe_status == Status::Off || self.current.status == Status::Off {
                        "its status is OFF"
                    } else {
                        "it could not be built; see status"
                    },
                }),
            },
        }
    }

    async fn restart(&mut self, name: &str, sup: &mut Supervisor) -> Result<Changes, CommandError> {
        if sup.tasks.contains_key(name) {
            sup.restart(name).await?;
        } else {
            let wanted = (self.current.status == Status::On)
                .then(|| {
                    self.current
                        .probes
                        .iter()
                        .find(|p| p.name == name && p.status == Status::On)
                })
                .flatten();
            let Some(p) = wanted else {
                return Err(CommandError::NotRunning {
                    probe: name.to_owned(),
                    why: "the configuration does not run it",
                });
            };
            sup.build_again(&p.clone())?;
        }
        self.steered = true;
        Ok(Changes {
            restarted: vec![name.to_owned()],
            ..Changes::default()
        })
    }

    async fn reload(&mut self, sup: &mut Supervisor) -> Result<Changes, CommandError> {
        let Some(source) = self.reload.clone() else {
            return Err(CommandError::Unavailable(
                "this blippd has no configuration source to read again",
            ));
        };
        let local = source.load()?;
        let base = config::resolve(local.doc)?;
        let dropped = self.edits.len();
        let mut changes = self
            .switch(Some(base.clone()), Edits::default(), base, sup)
            .await?;
        let file = source.file.as_ref().map_or_else(
            || "the built-in configuration".to_owned(),
            |f| f.display().to_string(),
        );
        changes.note = Some(if dropped > 0 {
            format!("read {file} again; {dropped} edit(s) made through the control socket dropped")
        } else {
            format!("read {file} again")
        });
        Ok(changes)
    }
}
