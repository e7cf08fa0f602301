//! Prerequisites of end-to-end tests. The project's rule: a test that lacks a prerequisite
//! skips with a loud message, except under `CI=true` or `FERROLB_E2E=1`, where the missing
//! prerequisite is a failure (so CI can never go green by skipping).

/// Why a test did not run; the test returns early when it gets one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped(pub String);

/// Whether missing prerequisites are failures: `CI=true` or `FERROLB_E2E=1`.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("FERROLB_E2E").is_ok_and(|v| v == "1")
}

/// Whether an executable file named `tool` is in a directory of `$PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Checks that every `(tool, apt package)` in `tools` is on `$PATH`, for the test or suite
/// called `what`. All missing tools are named at once. On failure: panics under [`strict`],
/// otherwise prints a loud `SKIPPED` line and returns `Err`, so the caller returns early.
pub fn require(what: &str, tools: &[(&str, &str)]) -> Result<(), Skipped> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|(tool, _)| {
            // Daemons that live off PATH (FRR's in /usr/lib/frr) are named by absolute path.
            let path = std::path::Path::new(tool);
            !(if path.is_absolute() {
                path.exists()
            } else {
                on_path(tool)
            })
        })
        .map(|(tool, pkg)| format!("`{tool}` (apt-get install {pkg})"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(skip_or_fail(
            what,
            &format!("missing {}", missing.join(", ")),
        ))
    }
}

/// Reports that `what` cannot run because of `why`: panics under [`strict`], otherwise prints a
/// loud `SKIPPED` line and returns the reason for the caller to return early with.
pub fn skip_or_fail(what: &str, why: &str) -> Skipped {
    assert!(
        !strict(),
        "{what} cannot run, and CI=true or FERROLB_E2E=1 makes that a failure: {why}"
    );
    eprintln!("\n*** SKIPPED: {what}: {why} (set FERROLB_E2E=1 to make this a failure) ***\n");
    Skipped(why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_exists_is_found_and_one_that_does_not_is_not() {
        // `sh` is on every PATH a test can run with; the other name cannot exist.
        assert!(on_path("sh"));
        assert!(!on_path("ferrolb-no-such-tool-7f3a"));
    }
}
