//! How many log lines an actor may print: a rate every actor has, kept in its context
//! (`theater:simple/runtime.log` spends it; the actor's exit reports what it held back).

/// The longest log line printed; the rest is cut (the chain keeps the whole call).
pub const MAX_LOG_LINE_BYTES: usize = 16 * 1024;
/// Log lines an actor may print per second, on average, after a burst of [`LOG_BURST`].
pub const LOG_LINES_PER_SECOND: f64 = 100.0;
pub const LOG_BURST: f64 = 1000.0;

/// An actor's log rate: a token bucket. Lines over the rate are counted, not printed, and the
/// count is printed with the next line that fits.
pub(crate) struct LogBudget {
    tokens: f64,
    refilled: std::time::Instant,
    dropped: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            tokens: LOG_BURST,
            refilled: std::time::Instant::now(),
            dropped: 0,
        }
    }
}

impl LogBudget {
    /// Whether a line may be printed now; if so, how many were held back before it.
    pub(crate) fn take(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * LOG_LINES_PER_SECOND;
        self.tokens = (self.tokens + earned).min(LOG_BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(self.held_back())
    }

    /// Lines held back since the last one printed; the count starts over.
    pub(crate) fn held_back(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

/// The line that reports `n` held-back log lines.
pub(crate) fn held_back_notice(n: u64) -> String {
    format!(
        "({n} log lines not printed: over {LOG_LINES_PER_SECOND} lines a second; the chain has them)"
    )
}
