//! What moving to a configuration asks of the probes that run, decided
//! apart from doing it: the supervisor builds, stops and starts what the
//! plan says, and the plan's cases are tested here without spawning
//! anything.

use std::collections::BTreeMap;

use crate::config::{Config, ProbeConfig, Status};

/// The probes `config` wants running, by name: none when the service is
/// OFF, else those whose own status is ON.
pub(super) fn wanted(config: &Config) -> BTreeMap<&str, &ProbeConfig> {
    if config.status == Status::Off {
        return BTreeMap::new();
    }
    config
        .probes
        .iter()
        .filter(|p| p.status == Status::On)
        .map(|p| (p.name.as_str(), p))
        .collect()
}

/// The changes that take the running probes to a configuration.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan<'a> {
    /// Running and no longer wanted, in name order.
    pub(super) stop: Vec<String>,
    /// Running and wanted with another configuration, in name order: each
    /// is stopped and is also in `start`.
    pub(super) restart: Vec<String>,
    /// Wanted and not running as configured (new, or in `restart`), in
    /// name order.
    pub(super) start: Vec<&'a ProbeConfig>,
}

/// The plan from `running` (each running probe's name and configuration)
/// to what `config` wants. A probe running as `config` configures it is
/// left alone.
pub(super) fn reconcile<'a, 'r>(
    running: impl IntoIterator<Item = (&'r str, &'r ProbeConfig)>,
    config: &'a Config,
) -> Plan<'a> {
    let wanted = wanted(config);
    let running: BTreeMap<&str, &ProbeConfig> = running.into_iter().collect();
    let mut plan = Plan::default();
    for (name, config) in &running {
        match wanted.get(name) {
            None => plan.stop.push((*name).to_owned()),
            Some(p) if *p != *config => plan.restart.push((*name).to_owned()),
            Some(_) => {}
        }
    }
    plan.start = wanted
        .into_iter()
        .filter(|(name, p)| running.get(name) != Some(p))
        .map(|(_, p)| p)
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The `probes` section of a service, built a change at a time.
    struct Probes(Value);

    impl Probes {
        /// Each of `modules` as a probe of that name and no keys of its own.
        fn of(modules: &[&str]) -> Self {
            Self(
                modules
                    .iter()
                    .map(|m| ((*m).to_owned(), json!({ "probe_module": m })))
                    .collect(),
            )
        }

        /// Probe `name` with `key` set to `value`.
        fn set(mut self, name: &str, key: &str, value: Value) -> Self {
            self.0[name][key] = value;
            self
        }

        /// The resolved configuration of a service in `status` with these
        /// probes, collecting every 5 s unless they say otherwise.
        fn config(self, status: &str) -> Config {
            let doc = json!({"status": status, "properties": {"configurations": {
                "probe_defaults": {"schedule_params": {"every": 5}}, "probes": self.0}}});
            crate::config::resolve(doc).unwrap()
        }
    }

    const THREE: [&str; 3] = ["cpu", "mem", "numa"];

    fn running(config: &Config) -> Vec<(&str, &ProbeConfig)> {
        config
            .probes
            .iter()
            .filter(|p| p.status == Status::On)
            .map(|p| (p.name.as_str(), p))
            .collect()
    }

    fn names(probes: &[&ProbeConfig]) -> Vec<String> {
        probes.iter().map(|p| p.name.clone()).collect()
    }

    fn three() -> Config {
        Probes::of(&THREE).config("ON")
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let now = three();
        assert_eq!(reconcile(running(&now), &three()), Plan::default());
    }

    #[test]
    fn nothing_running_starts_every_wanted_probe_in_name_order() {
        let next = three();
        let plan = reconcile([], &next);
        assert_eq!(names(&plan.start), ["cpu", "mem", "numa"]);
        assert!(plan.stop.is_empty() && plan.restart.is_empty());
    }

    #[test]
    fn a_changed_probe_restarts_and_only_it() {
        let now = three();
        let next = Probes::of(&THREE)
            .set("mem", "schedule_params", json!({"every": 1}))
            .config("ON");
        let plan = reconcile(running(&now), &next);
        assert_eq!(plan.restart, ["mem"]);
        assert_eq!(names(&plan.start), ["mem"]);
        assert!(plan.stop.is_empty());
    }

    #[test]
    fn a_removed_or_off_probe_stops_and_a_new_one_starts() {
        let now = three();
        let next = Probes::of(&["cpu", "mem", "port"])
            .set("mem", "status", json!("OFF"))
            .config("ON");
        let plan = reconcile(running(&now), &next);
        assert_eq!(plan.stop, ["mem", "numa"]);
        assert_eq!(names(&plan.start), ["port"]);
        assert!(plan.restart.is_empty());
    }

    #[test]
    fn service_off_stops_everything_and_on_starts_it_again() {
        let now = three();
        let off = Probes::of(&THREE).config("OFF");
        let plan = reconcile(running(&now), &off);
        assert_eq!(plan.stop, ["cpu", "mem", "numa"]);
        assert!(plan.start.is_empty() && plan.restart.is_empty());
        let on = three();
        assert_eq!(names(&reconcile([], &on).start), ["cpu", "mem", "numa"]);
    }
}
