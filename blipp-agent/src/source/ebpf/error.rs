/// Why an eBPF program or map is not usable. The message is what the
/// fallback log line says.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// tracefs is neither mounted nor mountable.
    #[error("tracefs unavailable: {0}")]
    Tracefs(String),
    /// A tracepoint's format file lacks a field the program needs.
    #[error("tracepoint {tracepoint}: {problem}")]
    Format {
        /// `category/name`.
        tracepoint: String,
        /// What is wrong.
        problem: String,
    },
    /// The embedded object is malformed (a build problem).
    #[error("{0}")]
    Object(#[source] Box<super::object::ObjectError>),
    /// The object could not be loaded (no BPF permission, BPF disabled...).
    #[error("loading the eBPF object: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program failed to load (verifier) or attach.
    #[error("program {program}: {source}")]
    Program {
        /// Program name.
        program: &'static str,
        /// aya's error (verifier log included).
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map is missing or has the wrong type.
    #[error("map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// aya's error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A program cannot run on this kernel: what it reads is missing.
    #[error("program {program}: {reason}")]
    Unusable {
        /// Program name.
        program: &'static str,
        /// Why.
        reason: String,
    },
    /// A map's descriptor could not be duplicated for a probe.
    #[error("map {map}: duplicating its descriptor: {source}")]
    Dup {
        /// Map name.
        map: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The number of possible CPUs, the length of a per-CPU value, is
    /// unknown.
    #[error("reading {path}: {source}")]
    Cpus {
        /// The file that says it.
        path: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A map is of a kind the agent does not read.
    #[error("map {0} is of a kind the agent does not read")]
    MapKind(&'static str),
    /// A map the program should have is not in the object.
    #[error("map {0} is not in the eBPF object")]
    MissingMap(&'static str),
    /// A program failed to load or attach before blippd re-executed
    /// itself: the words of that failure.
    #[error("{0}")]
    Failed(String),
    /// A program no probe asked for before blippd re-executed itself:
    /// programs are loaded only before that.
    #[error(
        "program {0}: not loaded at start-up (blippd loads programs only before it re-executes itself; restart blippd to load it)"
    )]
    NotInherited(&'static str),
    /// A program the agent expects is not in the object.
    #[error("program {0} is not in the eBPF object")]
    MissingProgram(&'static str),
}
