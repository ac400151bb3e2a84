//! Command glue: turn parsed arguments into engine calls, messages and an exit code.

pub mod daemon;
pub mod fp;
pub mod hook;
pub mod kv;
pub mod report;
pub mod rust_artifacts;
pub mod session;
pub mod status_text;
pub mod tasks;
pub mod why;
pub mod wrap;

use crate::daemon::client::{self, ClientError};
use crate::daemon::lifecycle::{DaemonPaths, daemon_disabled};
use crate::daemon::protocol::{Request, Response};
use crate::ui::Ui;

/// Sends `request` to the daemon (started on demand); `None` when it is disabled or
/// unreachable (one warning), for the caller to work in-process.
pub fn call_or_in_process(
    paths: &DaemonPaths,
    request: &Request,
) -> anyhow::Result<Option<Response>> {
    if daemon_disabled() {
        return Ok(None);
    }
    match client::call(paths, request) {
        Ok(response) => Ok(Some(response)),
        Err(ClientError::Unavailable(why)) => {
            Ui::default().warn(format_args!(
                "daemon unavailable ({why}); working in-process"
            ));
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}
