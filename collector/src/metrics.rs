//! `--metrics ADDR`: the live state over HTTP in the Prometheus / OpenMetrics
//! text format (GET /metrics), for the Prometheus servers clusters already
//! run. Each scrape encodes the latest snapshot (snapshot.rs) through
//! `prometheus-client`'s custom-collector interface: no second copy of the
//! state, and the drain loop never waits on a scrape. Served by `tiny_http`
//! on its own thread; loopback only unless `--metrics-allow-remote`
//! (docs/security.md).
//!
//! Per process series carry a `pid` label (a pid traced twice — exec — shows
//! its newest image); processes that ended holding nothing drop out, their
//! events stay in the collector-wide counters.

use crate::snapshot::{Shared, Snapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// `PORT` (loopback), or `HOST:PORT`; a non-loopback address needs `allow_remote`.
pub fn parse_addr(s: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = match s.parse::<u16>() {
        Ok(port) => vec![SocketAddr::from(([127, 0, 0, 1], port))],
        Err(_) => s.to_socket_addrs().map_err(|e| format!("--metrics {s}: {e} (expected PORT or HOST:PORT)"))?.collect(),
    };
    let Some(first) = addrs.first().copied() else { return Err(format!("--metrics {s}: no address")) };
    if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        if !allow_remote {
            return Err(format!(
                "--metrics {s}: {} is not a loopback address and the endpoint has no authentication; \
                 add --metrics-allow-remote to serve it there anyway (see docs/security.md)",
                a.ip()
            ));
        }
    }
    Ok(first)
}

#[derive(Debug)]
struct SnapshotMetrics(Arc<Shared>);

type Labels = Vec<(&'static str, String)>;

fn family<M: EncodeMetric>(enc: &mut DescriptorEncoder, name: &str, help: &str, t: MetricType, series: Vec<(Labels, M)>) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, t)?;
    for (labels, metric) in &series {
        metric.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(v.min(i64::MAX as u64) as i64)
}

fn chip_type(chip: i32, t: ttalloc_ring::BufferType) -> Labels {
    vec![("chip", chip.to_string()), ("type", t.name().to_string())]
}

fn encode_snapshot(s: &Snapshot, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let c = |n: &str, help: &str, v: u64, enc: &mut DescriptorEncoder| ConstCounter::new(v).encode(enc.encode_descriptor(n, help, None, MetricType::Counter)?);
    c("ttalloc_events", "Event records received from traced processes (as ttalloc replay counts them)", s.events, enc)?;
    c("ttalloc_dropped_events", "Events lost to ring overflow (their live totals were resynced)", s.dropped, enc)?;
    c("ttalloc_unknown_frees", "Frees that matched no live allocation", s.unknown_frees, enc)?;
    c("ttalloc_processes", "Traced processes seen since the collector started", s.processes, enc)?;
    gauge(s.attached).encode(enc.encode_descriptor("ttalloc_attached_processes", "Traced processes being drained now", None, MetricType::Gauge)?)?;

    let per_chip = |f: fn(&crate::snapshot::Cell) -> u64| s.usage.iter().map(|((chip, t), u)| (chip_type(*chip, *t), gauge(f(u)))).collect();
    family(enc, "ttalloc_chip_bytes_in_use", "Device bytes in use per chip and memory type, all processes", MetricType::Gauge, per_chip(|u| u.current))?;
    family(enc, "ttalloc_chip_peak_bytes", "Highest bytes in use per chip and memory type so far, all processes", MetricType::Gauge, per_chip(|u| u.peak))?;
    family(enc, "ttalloc_chip_live_allocations", "Live allocations per chip and memory type", MetricType::Gauge, per_chip(|u| u.live))?;

    // One row per pid: the newest image of a pid (highest p) wins.
    let procs: BTreeMap<u32, &crate::snapshot::ProcRow> = s.procs.iter().map(|p| (p.pid, p)).collect();
    let per_proc = |f: fn(&crate::snapshot::Cell) -> u64| {
        procs
            .values()
            .flat_map(|p| {
                p.usage.iter().map(move |((chip, t), u)| {
                    let mut l = vec![("pid", p.pid.to_string())];
                    l.extend(chip_type(*chip, *t));
                    (l, gauge(f(u)))
                })
            })
            .collect()
    };
    family(enc, "ttalloc_process_bytes_in_use", "Device bytes in use per process, chip and memory type", MetricType::Gauge, per_proc(|u| u.current))?;
    family(enc, "ttalloc_process_peak_bytes", "Highest bytes in use per process, chip and memory type so far", MetricType::Gauge, per_proc(|u| u.peak))?;
    family(enc, "ttalloc_process_live_allocations", "Live allocations per process, chip and memory type", MetricType::Gauge, per_proc(|u| u.live))?;
    let per_pid = |f: fn(&crate::snapshot::ProcRow) -> u64| procs.values().map(|p| (vec![("pid", p.pid.to_string())], ConstCounter::new(f(p)))).collect();
    family(enc, "ttalloc_process_events", "Event records received from this process", MetricType::Counter, per_pid(|p| p.events))?;
    family(enc, "ttalloc_process_dropped_events", "Events of this process lost to ring overflow", MetricType::Counter, per_pid(|p| p.dropped))?;
    family(enc, "ttalloc_process_unknown_frees", "Frees of this process that matched no live allocation", MetricType::Counter, per_pid(|p| p.unknown_frees))?;
    let attached = procs.values().map(|p| (vec![("pid", p.pid.to_string()), ("command", p.short_command())], gauge(p.attached as u64))).collect();
    family(enc, "ttalloc_process_attached", "1 while the process is drained, 0 once it ended (still holding memory)", MetricType::Gauge, attached)
}

impl Collector for SnapshotMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        encode_snapshot(&self.0.get(), &mut enc)
    }
}

pub fn registry(shared: Arc<Shared>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(SnapshotMetrics(shared)));
    r
}

pub fn exposition(r: &Registry) -> String {
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, r).expect("writing to a String cannot fail");
    s
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn respond(req: tiny_http::Request, r: &Registry) {
    use tiny_http::{Header, Method, Response};
    let path = req.url().split('?').next().unwrap_or("");
    let get = matches!(req.method(), Method::Get | Method::Head);
    let reply = match (get, path) {
        (true, "/metrics") => {
            let h = Header::from_bytes("Content-Type", CONTENT_TYPE).expect("valid header");
            Response::from_string(exposition(r)).with_header(h)
        }
        (true, "/") => Response::from_string("ttalloc-collect: metrics at /metrics\n"),
        (true, _) => Response::from_string("not found\n").with_status_code(404),
        (false, _) => Response::from_string("method not allowed\n").with_status_code(405),
    };
    let _ = req.respond(reply);
}

/// Binds `addr` and serves scrapes on a thread of its own. Returns the bound address.
pub fn serve(addr: SocketAddr, shared: Arc<Shared>) -> Result<SocketAddr, String> {
    let server = tiny_http::Server::http(addr).map_err(|e| format!("--metrics {addr}: {e}"))?;
    let bound = server.server_addr().to_ip().ok_or_else(|| format!("--metrics {addr}: not an IP listener"))?;
    let r = registry(shared);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                respond(req, &r);
            }
        })
        .map_err(|e| format!("--metrics: {e}"))?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::*;
    use ttalloc_ring::BufferType;

    #[test]
    fn addresses_are_loopback_unless_allowed() {
        assert_eq!(parse_addr("9464", false).unwrap(), "127.0.0.1:9464".parse().unwrap());
        assert_eq!(parse_addr("127.0.0.1:0", false).unwrap(), "127.0.0.1:0".parse().unwrap());
        assert_eq!(parse_addr("[::1]:9464", false).unwrap(), "[::1]:9464".parse().unwrap());
        let e = parse_addr("0.0.0.0:9464", false).unwrap_err();
        assert!(e.contains("not a loopback address") && e.contains("--metrics-allow-remote"), "{e}");
        assert_eq!(parse_addr("0.0.0.0:9464", true).unwrap(), "0.0.0.0:9464".parse().unwrap());
        assert!(parse_addr("nonsense", false).unwrap_err().starts_with("--metrics nonsense:"));
    }

    #[test]
    fn exposition_has_exact_series() {
        let m = model(&[
            process(0, 100, "/usr/bin/python3 /w/hold.py --secret x"),
            process(1, 200, "/bin/ttfake_driver mesh 8"),
            alloc(0, 0, 0, BufferType::Dram, 4096),
            alloc(0, 1, 0, BufferType::Dram, 8192),
            free(0, 2, 0),
            alloc(1, 0, 0, BufferType::Dram, 1024),
            alloc(1, 1, 0, BufferType::L1, 2048),
            free(1, 2, 1),
        ]);
        let shared = Arc::new(Shared::default());
        shared.put(Snapshot::build(&m, &|p| p == 0));
        let text = exposition(&registry(shared));
        let series: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            series,
            [
                "ttalloc_events_total 6",
                "ttalloc_dropped_events_total 0",
                "ttalloc_unknown_frees_total 0",
                "ttalloc_processes_total 2",
                "ttalloc_attached_processes 1",
                "ttalloc_chip_bytes_in_use{chip=\"0\",type=\"DRAM\"} 9216",
                "ttalloc_chip_bytes_in_use{chip=\"0\",type=\"L1\"} 0",
                "ttalloc_chip_peak_bytes{chip=\"0\",type=\"DRAM\"} 12288",
                "ttalloc_chip_peak_bytes{chip=\"0\",type=\"L1\"} 2048",
                "ttalloc_chip_live_allocations{chip=\"0\",type=\"DRAM\"} 2",
                "ttalloc_chip_live_allocations{chip=\"0\",type=\"L1\"} 0",
                "ttalloc_process_bytes_in_use{pid=\"100\",chip=\"0\",type=\"DRAM\"} 8192",
                "ttalloc_process_bytes_in_use{pid=\"200\",chip=\"0\",type=\"DRAM\"} 1024",
                "ttalloc_process_bytes_in_use{pid=\"200\",chip=\"0\",type=\"L1\"} 0",
                "ttalloc_process_peak_bytes{pid=\"100\",chip=\"0\",type=\"DRAM\"} 12288",
                "ttalloc_process_peak_bytes{pid=\"200\",chip=\"0\",type=\"DRAM\"} 1024",
                "ttalloc_process_peak_bytes{pid=\"200\",chip=\"0\",type=\"L1\"} 2048",
                "ttalloc_process_live_allocations{pid=\"100\",chip=\"0\",type=\"DRAM\"} 1",
                "ttalloc_process_live_allocations{pid=\"200\",chip=\"0\",type=\"DRAM\"} 1",
                "ttalloc_process_live_allocations{pid=\"200\",chip=\"0\",type=\"L1\"} 0",
                "ttalloc_process_events_total{pid=\"100\"} 3",
                "ttalloc_process_events_total{pid=\"200\"} 3",
                "ttalloc_process_dropped_events_total{pid=\"100\"} 0",
                "ttalloc_process_dropped_events_total{pid=\"200\"} 0",
                "ttalloc_process_unknown_frees_total{pid=\"100\"} 0",
                "ttalloc_process_unknown_frees_total{pid=\"200\"} 0",
                "ttalloc_process_attached{pid=\"100\",command=\"python3 hold.py\"} 1",
                "ttalloc_process_attached{pid=\"200\",command=\"ttfake_driver mesh\"} 0",
            ]
        );
        assert!(text.contains("# TYPE ttalloc_chip_peak_bytes gauge\n") && text.contains("# TYPE ttalloc_events counter\n"));
        assert!(text.ends_with("# EOF\n"));
        assert!(!text.contains("secret"), "command lines are not exported, only program names");
    }

    #[test]
    fn serves_metrics_over_http() {
        use std::io::{Read, Write};
        let shared = Arc::new(Shared::default());
        shared.put(Snapshot::build(&model(&[process(0, 100, "a"), alloc(0, 0, 2, BufferType::Trace, 512)]), &|_| true));
        let addr = serve("127.0.0.1:0".parse().unwrap(), shared).unwrap();
        let get = |path: &str| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        };
        let r = get("/metrics");
        assert!(r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("Content-Type: application/openmetrics-text"), "{r}");
        assert!(r.contains("\nttalloc_chip_bytes_in_use{chip=\"2\",type=\"TRACE\"} 512\n"), "{r}");
        assert!(get("/nope").contains(" 404 "));
    }
}
