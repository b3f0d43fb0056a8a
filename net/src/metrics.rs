//! `--metrics ADDR`: the live counters of a streamer or headset in the Prometheus text format
//! (OpenMetrics, encoded by `prometheus-client`), served over plain HTTP at `GET /metrics`.
//!
//! Both binaries keep their live state as serializable reports; at every scrape the
//! [`Collect`] callback hands those over as JSON and each numeric leaf becomes one gauge,
//! named by its path (`binoc_eyes_decoded{receiver="quic 10.0.0.2:7878 #0",eye="left"}`):
//! the counters and summaries the final report prints, with no second list of fields to keep
//! in step. Under `left`/`right` the path turns into an `eye` label.
//!
//! An object shaped as `shared_proto::latency::LatencyHistogram` (`le_ms`, `counts`, `sum_ms`,
//! `count`) becomes a histogram (`_bucket{le=…}`, `_sum`, `_count`, in milliseconds) instead:
//! every frame's latency per stage, for quantiles over any window in Prometheus.
//!
//! The server answers only `GET /metrics` (404 otherwise), reads headers within 5 s, ends any
//! connection after 10 s and serves at most 16 connections at once: a scraper on the LAN cannot
//! hold the process's resources.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Labels of one report (e.g. `[("receiver", "quic 10.0.0.2:7878 #0")]`), and the report.
pub type Labelled = (Vec<(String, String)>, serde_json::Value);

/// What is live at a scrape.
pub type Collect = Arc<dyn Fn() -> Vec<Labelled> + Send + Sync>;

type Labels = Vec<(String, String)>;

/// One histogram: (upper bound, samples in that bucket only) with `f64::MAX` for the last,
/// the sum and the count.
type HistogramSample = (Vec<(f64, u64)>, f64, u64);

/// The samples of one scrape, grouped by metric name: gauges and histograms.
#[derive(Default)]
pub struct Families {
    gauges: BTreeMap<String, Vec<(Labels, f64)>>,
    histograms: BTreeMap<String, Vec<(Labels, HistogramSample)>>,
}

/// `value` as a latency histogram, if it has that shape.
fn as_histogram(map: &serde_json::Map<String, serde_json::Value>) -> Option<HistogramSample> {
    if map.len() != 4 {
        return None;
    }
    let bounds = map.get("le_ms")?.as_array()?;
    let counts = map.get("counts")?.as_array()?;
    if counts.len() != bounds.len() + 1 {
        return None;
    }
    let mut buckets = Vec::with_capacity(counts.len());
    for (i, c) in counts.iter().enumerate() {
        let le = match bounds.get(i) {
            Some(b) => b.as_f64()?,
            None => f64::MAX,
        };
        buckets.push((le, c.as_u64()?));
    }
    Some((
        buckets,
        map.get("sum_ms")?.as_f64()?,
        map.get("count")?.as_u64()?,
    ))
}

/// Turns every numeric leaf of `value` into a sample of `families` (see the module doc).
pub fn flatten(
    prefix: &str,
    labels: &[(String, String)],
    value: &serde_json::Value,
    families: &mut Families,
) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(v) = n.as_f64() {
                families
                    .gauges
                    .entry(prefix.to_string())
                    .or_default()
                    .push((labels.to_vec(), v));
            }
        }
        serde_json::Value::Bool(b) => {
            families
                .gauges
                .entry(prefix.to_string())
                .or_default()
                .push((labels.to_vec(), f64::from(u8::from(*b))));
        }
        serde_json::Value::Object(map) => {
            if let Some(h) = as_histogram(map) {
                families
                    .histograms
                    .entry(prefix.to_string())
                    .or_default()
                    .push((labels.to_vec(), h));
                return;
            }
            for (k, v) in map {
                if k == "left" || k == "right" {
                    let mut l = labels.to_vec();
                    l.push(("eye".into(), k.clone()));
                    flatten(prefix, &l, v, families);
                } else {
                    flatten(&format!("{prefix}_{}", metric_name(k)), labels, v, families);
                }
            }
        }
        // Lists (e.g. one report per connection) and strings are not gauges.
        _ => {}
    }
}

/// A key as a metric name part: ASCII letters, digits and `_` only.
fn metric_name(k: &str) -> String {
    k.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

struct JsonCollector {
    prefix: String,
    collect: Collect,
}

impl std::fmt::Debug for JsonCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonCollector")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Collector for JsonCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut families = Families::default();
        for (labels, value) in (self.collect)() {
            flatten(&self.prefix, &labels, &value, &mut families);
        }
        for (name, samples) in &families.histograms {
            let mut family = encoder.encode_descriptor(
                name,
                "binoc latency, milliseconds, every frame (see the report of the same name)",
                None,
                prometheus_client::metrics::MetricType::Histogram,
            )?;
            for (labels, (buckets, sum, count)) in samples {
                let no_exemplars: Option<
                    &std::collections::HashMap<
                        usize,
                        prometheus_client::metrics::exemplar::Exemplar<Labels, f64>,
                    >,
                > = None;
                if labels.is_empty() {
                    family.encode_histogram(*sum, *count, buckets, no_exemplars)?;
                } else {
                    family.encode_family(labels)?.encode_histogram(
                        *sum,
                        *count,
                        buckets,
                        no_exemplars,
                    )?;
                }
            }
        }
        for (name, samples) in &families.gauges {
            let mut family = encoder.encode_descriptor(
                name,
                "binoc live counter (see the report of the same name)",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            if let [(labels, v)] = samples.as_slice() {
                if labels.is_empty() {
                    ConstGauge::new(*v).encode(family)?;
                    continue;
                }
            }
            for (labels, v) in samples {
                ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

/// The text exposition of what `collect` returns now, metric names under `prefix`.
pub fn render(prefix: &str, collect: Collect) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(JsonCollector {
        prefix: prefix.to_string(),
        collect,
    }));
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// A running metrics server.
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `GET /metrics` on `addr` (see the module doc) until the returned server is dropped.
pub async fn serve(addr: SocketAddr, prefix: &str, collect: Collect) -> Result<MetricsServer> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics: listening on {addr}"))?;
    let local_addr = listener.local_addr()?;
    let prefix = prefix.to_string();
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // full: the connection is dropped
            };
            let (prefix, collect) = (prefix.clone(), collect.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<Incoming>| {
                    let (prefix, collect) = (prefix.clone(), collect.clone());
                    async move { Ok::<_, Infallible>(answer(&req, &prefix, collect)) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(tcp), service);
                let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
                drop(slot);
            });
        }
    });
    tracing::info!(%local_addr, "metrics at http://{local_addr}/metrics");
    Ok(MetricsServer { local_addr, task })
}

fn answer(
    req: &hyper::Request<Incoming>,
    prefix: &str,
    collect: Collect,
) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::new()));
    if req.uri().path() != "/metrics" {
        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
        return r;
    }
    if req.method() != hyper::Method::GET {
        *r.status_mut() = hyper::StatusCode::METHOD_NOT_ALLOWED;
        return r;
    }
    let body = render(prefix, collect);
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_leaves_become_gauges_with_eye_labels() {
        let report = serde_json::json!({
            "eyes": {"left": {"decoded": 5, "latency_ms": {"p50": 1.5}},
                     "right": {"decoded": 6, "latency_ms": {"p50": 2.5}}},
            "bitrate_mbps": 3.25,
            "peer": "10.0.0.2",
            "connections": [1, 2],
            "connected": true,
            "hist": {"left": {"le_ms": [1.0, 5.0], "counts": [2, 3, 1], "sum_ms": 17.5, "count": 6}},
        });
        let collect: Collect =
            Arc::new(move || vec![(vec![("receiver".into(), "quic #0".into())], report.clone())]);
        let text = render("binoc", collect);
        for line in [
            "binoc_eyes_decoded{receiver=\"quic #0\",eye=\"left\"} 5.0",
            "binoc_eyes_decoded{receiver=\"quic #0\",eye=\"right\"} 6.0",
            "binoc_eyes_latency_ms_p50{receiver=\"quic #0\",eye=\"right\"} 2.5",
            "binoc_bitrate_mbps{receiver=\"quic #0\"} 3.25",
            "binoc_connected{receiver=\"quic #0\"} 1.0",
            "# TYPE binoc_eyes_decoded gauge",
            "# TYPE binoc_hist histogram",
            "binoc_hist_sum{receiver=\"quic #0\",eye=\"left\"} 17.5",
            "binoc_hist_count{receiver=\"quic #0\",eye=\"left\"} 6",
            "binoc_hist_bucket{le=\"1.0\",receiver=\"quic #0\",eye=\"left\"} 2",
            "binoc_hist_bucket{le=\"5.0\",receiver=\"quic #0\",eye=\"left\"} 5",
            "binoc_hist_bucket{le=\"+Inf\",receiver=\"quic #0\",eye=\"left\"} 6",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains("peer") && !text.contains("connections"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_server_answers_metrics_and_nothing_else() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let collect: Collect = Arc::new(|| vec![(vec![], serde_json::json!({"up": 1}))]);
            let server = serve("127.0.0.1:0".parse().unwrap(), "binoc", collect)
                .await
                .unwrap();
            let get = |path: &'static str, method: &'static str| async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut s = tokio::net::TcpStream::connect(server.local_addr)
                    .await
                    .unwrap();
                s.write_all(
                    format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).await.unwrap();
                out
            };
            let ok = get("/metrics", "GET").await;
            assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
            assert!(ok.contains("binoc_up 1.0"), "{ok}");
            assert!(get("/", "GET").await.starts_with("HTTP/1.1 404"));
            assert!(get("/metrics", "POST").await.starts_with("HTTP/1.1 405"));
        });
    }
}
