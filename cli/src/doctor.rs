//! `ttalloc doctor [LIB] [--json]` — can ttalloc hook this libtt_metal.so?
//!
//! TODO(symbols): wire to the `ttalloc-symbols` crate once it exports
//! `elf::analyze(&Path, Mode::Full) -> Result<Analysis, String>`,
//! `Analysis::to_json()`, `doctor::find_default_library()` and
//! `doctor::render_text(&Analysis)`; then add `ttalloc-symbols.workspace = true`
//! to cli/Cargo.toml and replace the body of `run` with:
//!
//! ```ignore
//! let lib = match lib { Some(p) => p.to_path_buf(), None => ttalloc_symbols::doctor::find_default_library().map_err(|e| Error::new("doctor", e))? };
//! let a = ttalloc_symbols::elf::analyze(&lib, ttalloc_symbols::elf::Mode::Full).map_err(|e| Error::new(lib.display().to_string(), e))?;
//! write_out(&if json { a.to_json() + "\n" } else { ttalloc_symbols::doctor::render_text(&a) })?;
//! ```

use crate::source::Error;
use std::path::Path;

pub fn run(lib: Option<&Path>, _json: bool) -> Result<(), Error> {
    let what = lib.map_or_else(|| "doctor".to_string(), |p| p.display().to_string());
    Err(Error::new(what, "`ttalloc doctor` is not available in this build yet (the libtt_metal.so analysis is not wired in)"))
}
