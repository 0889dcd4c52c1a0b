//! Several commands connected without a shell (`ps aux` then `grep x`):
//! each stage is a [`Runner`] of its own (the same sandbox, containment
//! and limits as a single command), run after the previous one has ended,
//! with the previous stage's standard output as its standard input. So a
//! stage never holds more than the output limit, and no pipe joins two
//! sandboxed processes. Unlike a shell pipeline, a stage does not start
//! before the previous one has ended: stages that stream forever (`tail
//! -f`) run into the timeout, which is the whole pipeline's.

use std::time::{Duration, Instant};

use super::{CommandError, Exit, Runner};

/// A single command, or several connected.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<Runner>,
    timeout: Duration,
}

impl Pipeline {
    /// `stages` (at least one) within `timeout` together.
    pub fn new(stages: Vec<Runner>, timeout: Duration) -> Self {
        assert!(!stages.is_empty(), "a pipeline has a stage");
        Self { stages, timeout }
    }

    fn last(&self) -> &Runner {
        &self.stages[self.stages.len() - 1]
    }

    /// Runs every stage in order, each fed the previous one's output. A
    /// stage that cannot start, times out or prints too much fails the
    /// whole run; a stage's exit status does not (`grep` exits 1 when
    /// nothing matched): the result is the last stage's.
    pub fn run(&mut self) -> Result<Exit, CommandError> {
        let deadline = Instant::now() + self.timeout;
        let mut input = Vec::new();
        let n = self.stages.len();
        for (i, stage) in self.stages.iter_mut().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CommandError::Timeout {
                    program: stage.argv()[0].clone(),
                    timeout: self.timeout,
                });
            }
            stage.set_timeout(left);
            stage.set_stdin(std::mem::take(&mut input));
            let exit = stage.run()?;
            if i + 1 == n {
                return Ok(exit);
            }
            input = stage.take_stdout();
        }
        unreachable!("a pipeline has a stage")
    }

    /// The first stage's argument vector (the program messages name).
    pub fn argv(&self) -> &[String] {
        self.stages[0].argv()
    }

    /// Standard output of the last stage's last run.
    pub fn stdout(&self) -> &[u8] {
        self.last().stdout()
    }

    /// Standard error of the last stage's last run.
    pub fn stderr(&self) -> &[u8] {
        self.last().stderr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(argv: &[&str]) -> Runner {
        Runner::new(
            argv.iter().map(|s| (*s).to_owned()).collect(),
            Vec::new(),
            Duration::from_secs(5),
            1 << 16,
        )
    }

    #[test]
    fn each_stage_reads_the_previous_output() {
        let mut p = Pipeline::new(
            vec![
                stage(&["printf", "a 1\\nb 2\\nc 3\\n"]),
                stage(&["grep", "-v", "b"]),
                stage(&["tr", "a-z", "A-Z"]),
            ],
            Duration::from_secs(10),
        );
        assert_eq!(p.run().unwrap(), Exit::Code(0));
        assert_eq!(p.stdout(), b"A 1\nC 3\n");
        assert_eq!(p.argv()[0], "printf");
        // Again, from the start: nothing of the previous run is kept.
        assert_eq!(p.run().unwrap(), Exit::Code(0));
        assert_eq!(p.stdout(), b"A 1\nC 3\n");
    }

    #[test]
    fn the_last_status_counts_and_a_failed_stage_fails_it() {
        let mut p = Pipeline::new(
            vec![stage(&["printf", "x\\n"]), stage(&["grep", "y"])],
            Duration::from_secs(10),
        );
        assert_eq!(p.run().unwrap(), Exit::Code(1));
        assert!(p.stdout().is_empty());
        let mut p = Pipeline::new(
            vec![stage(&["/nonexistent/program"]), stage(&["cat"])],
            Duration::from_secs(10),
        );
        assert!(matches!(p.run(), Err(CommandError::Spawn { .. })));
    }

    #[test]
    fn the_timeout_is_the_whole_pipelines() {
        let started = Instant::now();
        let mut p = Pipeline::new(
            vec![
                stage(&["sleep", "0.4"]),
                stage(&["sleep", "0.4"]),
                stage(&["true"]),
            ],
            Duration::from_millis(600),
        );
        assert!(matches!(p.run(), Err(CommandError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
