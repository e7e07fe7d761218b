//! Which ttnn release a library belongs to. The binaries carry no tt-metal version string
//! (checked on 0.65.0, 0.71.2, 0.81.1), so the only reliable source is the wheel's
//! `*.dist-info/METADATA` next to the unpacked package: in site-packages the library sits at
//! `<site>/ttnn/build/lib/libtt_metal.so` and the metadata at `<site>/ttnn-X.Y.Z.dist-info/`.

use std::path::Path;

const DIST_NAMES: [&str; 3] = ["ttnn-", "tt_metal-", "tt_nn-"];

pub(crate) fn wheel_version(lib: &Path) -> Option<String> {
    // The path as given first (a venv may symlink the package), then the real one.
    let real = std::fs::canonicalize(lib).ok();
    std::iter::once(lib).chain(real.as_deref()).find_map(version_near)
}

fn version_near(lib: &Path) -> Option<String> {
    for dir in lib.parent()?.ancestors().take(5) {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut infos: Vec<_> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".dist-info") && DIST_NAMES.iter().any(|p| n.starts_with(p)))
            .collect();
        infos.sort(); // "ttnn-" sorts after "tt_metal-"; prefer ttnn explicitly below
        infos.sort_by_key(|n| !n.starts_with("ttnn-"));
        for info in infos {
            if let Ok(meta) = std::fs::read_to_string(dir.join(&info).join("METADATA")) {
                if let Some(v) = meta.lines().find_map(|l| l.strip_prefix("Version:")) {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}
