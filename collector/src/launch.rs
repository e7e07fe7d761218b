//! Launch mode: `ttalloc-collect -- CMD ARGS…` runs the command with our
//! `libttalloc.so` preloaded and returns its exit status.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// `libttalloc.so` beside this binary (cargo puts both in target/<profile>/),
/// or `$TTALLOC_LIB`.
pub fn shim_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("TTALLOC_LIB") {
        // Absolute: the command may change directory and spawn others.
        return std::fs::canonicalize(&p).map_err(|e| format!("TTALLOC_LIB={}: {e}", PathBuf::from(&p).display()));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate myself: {e}"))?;
    let lib = exe.with_file_name("libttalloc.so");
    if lib.exists() {
        Ok(lib)
    } else {
        Err(format!("{} not found (build it with `make`, or set TTALLOC_LIB)", lib.display()))
    }
}

/// Runs the command. With `capture` (the full-screen live view owns the
/// terminal) its stdout and stderr are piped to us and its stdin is empty.
pub fn spawn(cmd: &[String], shm_dir: &std::path::Path, capture: bool) -> Result<Child, String> {
    let lib = shim_path()?;
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(old) if !old.is_empty() => format!("{}:{old}", lib.display()),
        _ => lib.display().to_string(),
    };
    let mut c = Command::new(&cmd[0]);
    c.args(&cmd[1..]).env("LD_PRELOAD", preload).env("TTALLOC_SHM_DIR", shm_dir);
    if capture {
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    c.spawn()
        .map_err(|e| format!("{}: {e}", cmd[0]))
}

/// The shell convention for a child's status: its code, or 128 + signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
