//! Arbitrary bytes as a ring file in the shm dir: what the collector opens,
//! validates and drains.
//!
//! A region is at least 64 KiB, too large for a fuzzer to mutate usefully,
//! so the input is a *patch* over a valid template region (16 ring slots,
//! 16 live slots, a few events, a mesh, the shim's info): byte 0 picks the
//! file length and when the patch lands, the rest overwrites, in order, the
//! header's first 512 bytes, the ring and live slots, and the first two
//! mesh slots. `seed()` is the unpatched template.

use crate::{check_one_line, scratch_file};
use std::io::Write;
use std::mem::{offset_of, size_of};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;
use ttalloc_ring::event::EventBody;
use ttalloc_ring::layout::{Header, MeshSlot, HEADER_BYTES, MAX_MESH_CHIPS, MESH_SLOTS, SLOT_BYTES};
use ttalloc_ring::live::LiveEntry;
use ttalloc_ring::{Kind, Region, RingReader};

const RING: u64 = 16;
const LIVE: u64 = 16;

/// (offset, length) of the parts of the file an input overwrites.
fn windows() -> [(usize, usize); 3] {
    [
        (0, 512),
        (HEADER_BYTES, (RING + LIVE) as usize * SLOT_BYTES),
        (offset_of!(Header, meshes), 2 * size_of::<MeshSlot>()),
    ]
}

/// The template region's bytes.
fn template() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let path = scratch_file("template");
        let _ = std::fs::remove_file(&path);
        let r = Region::create(&path, RING, LIVE, std::process::id(), 1).expect("template region");
        r.set_info(br#"{"tool":"ttalloc-shim","notes":[]}"#);
        let mesh = r.register_mesh(0x5000, &[0, 1, 2, 3]).expect("mesh slot");
        for i in 0..10u64 {
            let body = EventBody {
                kind: if i % 3 == 2 { Kind::Free as u8 } else { Kind::Alloc as u8 },
                object: 0x1000 + 64 * (i / 3),
                size: 4096 * (i + 1),
                address: 0x10_0000 + 0x1000 * i,
                chip: if i % 2 == 0 { 0 } else { -2 - mesh as i32 },
                ..Default::default()
            };
            let seq = r.push(&body).expect("room");
            if body.kind == Kind::Alloc as u8 {
                r.live_insert(body.object, &LiveEntry::from_event(seq, &body));
            }
        }
        // Consumed a few, so tail is not 0 and one lap wraps.
        RingReader::new(&r).drain(4, |_| {});
        let bytes = std::fs::read(&path).expect("template bytes");
        drop(r);
        let _ = std::fs::remove_file(&path);
        bytes
    })
}

/// The unpatched template as an input (a corpus seed).
pub fn seed() -> Vec<u8> {
    let t = template();
    let mut v = vec![0u8];
    for (off, len) in windows() {
        v.extend_from_slice(&t[off..off + len]);
    }
    v
}

/// The file an input describes, and whether to patch it only after the
/// collector has opened (validated) the pristine template.
fn build(data: &[u8]) -> (Vec<u8>, bool) {
    let mut file = template().to_vec();
    let Some((&mode, mut rest)) = data.split_first() else { return (file, false) };
    for (off, len) in windows() {
        let n = rest.len().min(len);
        file[off..off + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    let k = (mode as usize >> 2) & 0x1f;
    match mode & 3 {
        0 => {}
        1 => file.truncate(HEADER_BYTES + k * SLOT_BYTES),
        2 => file.extend(std::iter::repeat(0xa5).take((k + 1) * SLOT_BYTES)),
        _ => file.truncate(k * 2048),
    }
    (file, mode & 0x80 != 0)
}

fn write_ring(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).expect("scratch ring");
    f.write_all(bytes).expect("write scratch ring");
}

/// Opens the described ring as the collector does and reads all of it.
/// True if the ring was accepted (and read).
pub fn run(data: &[u8]) -> bool {
    let (bytes, after_open) = build(data);
    let path = scratch_file("ring");
    if after_open && bytes.len() == template().len() {
        // Validated first, scribbled on afterwards (shared memory: anyone with
        // write access can change it under the reader).
        write_ring(&path, template());
        let region = Region::open(&path).expect("the template is valid");
        // In place: truncating a mapped file would be a different fault (SIGBUS, see docs/reliability.md).
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).expect("scratch ring");
        f.write_all(&bytes).expect("scribble");
        read_all(&region);
        true
    } else {
        write_ring(&path, &bytes);
        let accepted = match Region::open(&path) {
            Ok(region) => {
                read_all(&region);
                true
            }
            Err(e) => {
                check_one_line("ring open", &e.to_string());
                false
            }
        };
        let _ = std::fs::remove_file(&path);
        accepted
    }
}

fn read_all(region: &Region) {
    let file_slots = (std::fs::metadata(region.path()).map_or(0, |m| m.len()) as usize).saturating_sub(HEADER_BYTES) / SLOT_BYTES;
    let rd = RingReader::new(region);
    let cap = region.ring_capacity();
    let (tail, _head, _dropped) = (rd.tail(), rd.head(), rd.dropped());
    let mut seen = 0u64;
    let d = rd.drain(u64::MAX, |e| {
        seen += 1;
        let _ = Kind::from_u8(e.body.kind);
    });
    assert_eq!(d.events, seen);
    assert!(d.events <= cap, "drained {} events from a {cap}-slot ring", d.events);
    let prefix = rd.published_prefix();
    assert!(prefix.wrapping_sub(rd.tail()) <= cap || prefix < rd.tail());
    let _ = rd.skip_unpublished(rd.tail());
    let _ = tail;
    let snapshot = region.live_snapshot();
    assert!(snapshot.len() <= file_slots, "{} live entries from {file_slots} slots", snapshot.len());
    for i in 0..MESH_SLOTS + 2 {
        assert!(region.mesh_chips(i).len() <= MAX_MESH_CHIPS);
        let _ = region.mesh_ptr(i);
    }
    let _ = region.find_mesh(0x5000);
    assert!(region.info().len() <= ttalloc_ring::layout::INFO_BYTES);
    let _ = region.problems();
}
