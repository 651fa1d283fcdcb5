//! `--report-hdr FILE`: every latency histogram of every interval in the HdrHistogram
//! interval-log format (written with the `hdrhistogram` crate's interval-log writer), one line
//! per metric per interval, tagged with the metric's report name (`Tag=message_rtt,…`).
//!
//! HdrHistogram's own tools read it: `HistogramLogProcessor -i FILE -tag message_rtt
//! -outputValueUnitRatio 1000` prints the percentile distribution in milliseconds (values,
//! including the `Interval_Max` column, are microseconds), and HdrHistogram's log analyzer /
//! plotter reads it too. Timestamps are seconds since
//! the start of the first stage (`BaseTime`), `StartTime` is the wall-clock time of that
//! start.
//!
//! The log is streamed (one flush per interval), so a run that is killed keeps every interval
//! written so far. [`HdrLog`] is an [`IntervalSink`]; write errors are reported once on stderr
//! and stop the log, never the run.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::metrics::timeseries::{IntervalSink, IntervalView};

/// Cannot create the HDR log.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot create the HDR log {path}: {source} (check that the directory exists and is writable)"
)]
pub struct HdrLogError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

struct State {
    out: Option<BufWriter<File>>,
    serializer: V2DeflateSerializer,
    /// End of the previous interval (start of the next), since the first stage began.
    prev: Duration,
}

/// The interval-log writer of one run.
pub struct HdrLog {
    path: PathBuf,
    state: Mutex<State>,
}

impl HdrLog {
    /// Create `path` and write the header: a comment, `StartTime` (wall clock now, which is
    /// within milliseconds of the first stage's start), `BaseTime` (the same, so interval
    /// timestamps are seconds into the run) and the legend.
    pub fn create(path: &Path) -> Result<HdrLog, HdrLogError> {
        let err = |source| HdrLogError {
            path: path.to_path_buf(),
            source,
        };
        let mut out = BufWriter::new(File::create(path).map_err(err)?);
        let mut serializer = V2DeflateSerializer::new();
        let now = SystemTime::now();
        IntervalLogWriterBuilder::new()
            .add_comment("wsscale latency histograms per interval; values in microseconds")
            .add_comment("tags: tcp_connect tls_handshake ws_handshake message_rtt ping_rtt heartbeat_rtt schedule_lag fanout_latency push_latency")
            .with_start_time(now)
            .with_base_time(now)
            .begin_log_with(&mut out, &mut serializer)
            .map_err(err)?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )
        .map_err(err)?;
        out.flush().map_err(err)?;
        Ok(HdrLog {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                out: Some(out),
                serializer,
                prev: Duration::ZERO,
            }),
        })
    }

    fn write(&self, v: &IntervalView<'_>) -> std::io::Result<()> {
        let mut st = self.state.lock().expect("hdr log lock");
        let State {
            out,
            serializer,
            prev,
        } = &mut *st;
        let Some(w) = out.as_mut() else {
            return Ok(());
        };
        let start = *prev;
        let length = v.elapsed.saturating_sub(start);
        *prev = v.elapsed;
        // A builder with no header settings writes no header lines: only histograms.
        let mut log = IntervalLogWriterBuilder::new().begin_log_with(w, serializer)?;
        for (name, h) in v.interval.hist.named() {
            if h.is_empty() {
                continue;
            }
            log.write_histogram(h, start, length, Tag::new(name))
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        w.flush()
    }
}

impl IntervalSink for HdrLog {
    fn interval(&self, v: &IntervalView<'_>) {
        if let Err(e) = self.write(v) {
            eprintln!(
                "warning: cannot write the HDR log {}: {e}; it stops here",
                self.path.display()
            );
            self.state.lock().expect("hdr log lock").out = None;
        }
    }
}
