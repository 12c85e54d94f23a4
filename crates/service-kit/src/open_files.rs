//! The process' limit of open files (`RLIMIT_NOFILE`), which every connection counts against.
//! Systems often start services with a low soft limit (1,024) under a much higher hard one; a
//! service that sizes its connection cap from the limit raises the soft one first.

/// Raises the soft limit of open files to the hard limit, and answers the limit now in force.
///
/// # Errors
/// When the limit cannot be read or set.
pub fn raise_to_hard_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}
