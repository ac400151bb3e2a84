//! The second half of a skip: the declared outputs as the success left them (restored from
//! the cache where they are not) and, with `--replay`, its captured streams. Either one
//! missing turns the skip into a run.

use super::judgement::Judgement;
use super::output_cache::{self, Restore};
use super::output_entry::OutputDigests;
use super::outputs::{Listing, Stamps, changed_outputs, digest_outputs_known};
use super::record::{RunFiles, RunRecord};
use super::restore;
use super::spec::RunSpec;
use crate::fingerprint::Digest;

/// A skip also needs the outputs as recorded (restored from the cache where they are not;
/// with `dry_run`, only whether they could be), and a stored replay when `--replay` asks for
/// it.
pub(crate) fn verify_skip(
    judgement: &mut Judgement,
    spec: &RunSpec,
    dry_run: bool,
    files: &RunFiles,
    record: &mut RunRecord,
) -> Result<(), String> {
    let Some(decision) = &judgement.decision else {
        return Ok(());
    };
    let key = decision.key;
    if !spec.outputs.is_empty() {
        let known = record.get(key).map(|k| (&k.outputs, &k.stamps));
        let Listing {
            digests: now,
            stamps,
            strays,
            ..
        } = digest_outputs_known(&spec.outputs, known)
            .map_err(|e| format!("cannot read outputs: {e}"))?;
        if !dry_run {
            restore::sweep(&strays);
        }
        let empty = OutputDigests::new();
        let known = record.get(key);
        let recorded = known.map_or(&empty, |k| &k.outputs);
        let stored = known.is_some_and(|k| k.stored);
        let changed = changed_outputs(recorded, &now);
        if changed.is_empty() {
            if !dry_run {
                restamp(files, record, key, stamps);
            }
        } else {
            let restored = match stored {
                false => Err(String::new()),
                true => {
                    let wanted = Restore {
                        recorded,
                        now: &now,
                        changed: &changed,
                    };
                    let use_daemon = judgement.through_daemon();
                    output_cache::restore(spec, key, &wanted, use_daemon, dry_run)
                }
            };
            if let Err(why) = restored {
                let missing = changed.iter().any(|p| now.get(p) == Some(&None));
                let what = if missing {
                    "output missing"
                } else {
                    "output changed"
                };
                let why = match why.is_empty() {
                    true => String::new(),
                    false => format!("; not restored: {why}"),
                };
                let message = format!("{what}: {}{why}", quoted(changed.iter()).join(", "));
                judgement.rerun("outputs_changed", message);
                return Ok(());
            }
            judgement.code = "restored";
            judgement.message = restored_message(&changed, dry_run);
            judgement.restored = true;
        }
    }
    if spec.replay {
        match record
            .get(key)
            .filter(|k| k.replay)
            .and_then(|_| files.load_replay(key))
        {
            Some(streams) => judgement.replay = Some(streams),
            None => judgement.rerun("no_replay", "no replay recorded".to_string()),
        }
    }
    Ok(())
}

/// Keeps the stamps of the settled outputs of `key`, so later skips read none of them
/// (written only when they changed; a record that cannot be written costs reads, nothing
/// else).
fn restamp(files: &RunFiles, record: &mut RunRecord, key: Digest, stamps: Stamps) {
    let Some(entry) = record.keys.iter_mut().find(|k| k.key == key) else {
        return;
    };
    if entry.stamps != stamps {
        entry.stamps = stamps;
        let _ = files.save(record);
    }
}

/// `restored 3 outputs: dist/, gen.rs, ...` (the first few named; `would restore` for a
/// dry run).
fn restored_message(changed: &[String], dry_run: bool) -> String {
    let shown = quoted(changed.iter().take(3));
    let more = if changed.len() > 3 { ", ..." } else { "" };
    let noun = if changed.len() == 1 {
        "output"
    } else {
        "outputs"
    };
    let verb = if dry_run { "would restore" } else { "restored" };
    format!(
        "{verb} {} {noun}: {}{more}",
        changed.len(),
        shown.join(", ")
    )
}

/// Output names as messages show them (quoted when they hold control characters).
fn quoted<'a>(names: impl Iterator<Item = &'a String>) -> Vec<std::borrow::Cow<'a, str>> {
    names.map(|n| crate::quote::path(n)).collect()
}
