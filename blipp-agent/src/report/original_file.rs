//! Data files in the original BLiPP's line format, written by the UNIS/MS
//! sink: a line per sample the MS accepted, with the mid the MS stores it
//! under, as the original's `data_logger` wrote them after each report.
//! Written when `POST /data` succeeds, so a sample sent again after an
//! unanswered attempt (the MS may hold it already) is written once.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::sink::original_line;
use crate::sample::Name;

/// Where each mid's lines go, and its event type.
pub type Targets = HashMap<String, (PathBuf, Name)>;

/// The lines of `data` (points by mid) that go to a data file, by file.
pub fn lines(targets: &Targets, data: &HashMap<String, Vec<Json>>) -> Vec<(PathBuf, String)> {
    let mut by_file: HashMap<&Path, String> = HashMap::new();
    for (mid, points) in data {
        let Some((path, event)) = targets.get(mid) else {
            continue;
        };
        let text = by_file.entry(path).or_default();
        for p in points {
            let value = match &p["value"] {
                Json::String(s) => s.clone(),
                v => v.to_string(),
            };
            original_line(
                text,
                p["ts"].as_u64().unwrap_or(0),
                event,
                Some(mid),
                None,
                &value,
            );
        }
    }
    by_file
        .into_iter()
        .map(|(p, t)| (p.to_owned(), t))
        .collect()
}

/// Open data files, appended to.
#[derive(Default)]
pub struct Files {
    open: HashMap<PathBuf, std::fs::File>,
}

impl Files {
    /// Appends `text` to `path`; a failure is logged and counted by the
    /// caller's log only (the MS has the samples).
    pub fn write(&mut self, path: &Path, text: &str) {
        if !self.open.contains_key(path) {
            match super::open_data_file(path) {
                Ok((_, f)) => {
                    self.open.insert(path.to_owned(), f);
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the data file");
                    return;
                }
            }
        }
        if let Some(f) = self.open.get_mut(path)
            && let Err(e) = f.write_all(text.as_bytes())
        {
            tracing::error!(path = %path.display(), error = %e, "writing the data file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_in_the_originals_format() {
        let mut targets = Targets::new();
        targets.insert(
            "m1".into(),
            (
                "/tmp/ping.log".into(),
                Name::from("ps:tools:blipp:linux:net:ping:rtt"),
            ),
        );
        let mut data = HashMap::new();
        data.insert(
            "m1".to_owned(),
            vec![
                json!({"ts": 1_700_000_000_000_000u64, "value": 0.045}),
                json!({"ts": 1_700_000_001_000_000u64, "value": 3}),
            ],
        );
        data.insert("other".to_owned(), vec![json!({"ts": 1, "value": 1})]);
        let got = lines(&targets, &data);
        assert_eq!(
            got,
            [(
                PathBuf::from("/tmp/ping.log"),
                "ts=1700000000000000 event=ps:tools:blipp:linux:net:ping:rtt mid=m1 value=0.045\n\
                 ts=1700000001000000 event=ps:tools:blipp:linux:net:ping:rtt mid=m1 value=3\n"
                    .to_owned()
            )]
        );
    }
}
