//! `ttalloc doctor [LIB] [--json]` — can ttalloc hook this libtt_metal.so?
//! (Default: the library a tt-metal run would load.) The analysis and its
//! rendering live in `ttalloc-symbols`; this only wires them to the command line.

use crate::replay::write_out;
use crate::source::Error;
use std::path::Path;
use ttalloc_symbols::{doctor, elf};

pub fn run(lib: Option<&Path>, json: bool) -> Result<(), Error> {
    let lib = match lib {
        Some(p) => p.to_path_buf(),
        None => doctor::find_default_library().map_err(|e| Error::new("doctor", e))?,
    };
    let a = elf::analyze(&lib, elf::Mode::Full).map_err(|e| Error::new(lib.display().to_string(), e))?;
    let out = if json { a.to_json_string() + "\n" } else { doctor::render_text(&a) };
    write_out(&out)
}
