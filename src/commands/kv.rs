//! `zccache kv get | put`: the artifact store's key-value face, through the daemon (started on
//! demand) or in-process when it cannot be reached.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::KvCommand;
use crate::compile_cache::artifact::Artifact;
use crate::compile_cache::store::Store;
use crate::daemon::client::call_or_in_process as call;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{Request, Response};
use crate::ui::Ui;

/// The output name a value is stored under.
const VALUE: &str = "value";
/// Exit status of `get` on a miss.
const MISS: u8 = 1;

/// Runs `zccache kv ...`.
pub fn execute(command: &KvCommand) -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::from_env()?;
    match command {
        KvCommand::Put { key, file } => {
            let value = read_value(file.as_deref())?;
            let artifact = Artifact {
                outputs: vec![(VALUE.to_string(), value)],
                stdout: Vec::new(),
                stderr: Vec::new(),
                exit_code: 0,
            };
            let request = Request::Store {
                cache_key: key.clone(),
                artifact: artifact.clone(),
            };
            if call(&paths, &request)?.is_none() {
                Store::new(&paths.dir).put(key, &artifact)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KvCommand::Get { key, file } => {
            let request = Request::Lookup {
                cache_key: key.clone(),
            };
            let artifact = match call(&paths, &request)? {
                Some(Response::LookupResult { artifact }) => artifact,
                Some(other) => bail!("unexpected daemon reply: {other:?}"),
                None => Store::new(&paths.dir).get(key)?,
            };
            let value = artifact.and_then(|a| a.outputs.into_iter().find(|(n, _)| n == VALUE));
            let Some((_, bytes)) = value else {
                Ui::default().say(format_args!("kv: no value for {key:?}"));
                return Ok(ExitCode::from(MISS));
            };
            write_value(file.as_deref(), &bytes)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_value(file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match file {
        Some(path) => std::fs::read(path).with_context(|| format!("read {}", path.display())),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("read stdin")?;
            Ok(bytes)
        }
    }
}

fn write_value(file: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match file {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
        }
        None => {
            let mut out = std::io::stdout();
            out.write_all(bytes)
                .and_then(|()| out.flush())
                .context("write stdout")
        }
    }
}
