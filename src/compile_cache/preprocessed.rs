//! Preprocessor mode: the key of a compile is the hash of its `-E` output. Slower than
//! direct mode (the preprocessor runs on every lookup), so it only decides where direct
//! mode cannot be trusted: `__DATE__`/`__TIME__` in the source or a header, or headers that
//! changed while the compile read them (the manifest remembers that, so the next compile
//! comes here at once).

use std::io;

use super::invoke::run;
use super::request::Request;
use crate::fingerprint::Digest;

/// Flags that name outputs or dependency files, with their value as the next argument.
const OUTPUT_WITH_VALUE: [&str; 4] = ["-o", "-MF", "-MT", "-MQ"];
/// Flags dropped from a preprocessor run (a depfile or an object would be written).
const OUTPUT_FLAGS: [&str; 4] = ["-c", "-MD", "-MMD", "-MP"];

/// The store key of this compile in preprocessor mode: `base` and the `-E` output of
/// `args`; `None` when the preprocessor fails (the compile then runs and is not stored).
pub(super) fn preprocessed_key(
    req: &Request,
    args: &[String],
    base: &Digest,
) -> io::Result<Option<String>> {
    let (status, stdout, _) = run(req, &preprocessor_args(args))?;
    if status != 0 {
        return Ok(None);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update(&base.0);
    hasher.update(&stdout);
    Ok(Some(format!("preprocessed/{}", hasher.finalize().to_hex())))
}

/// `args` preprocessing to stdout instead of compiling: `-E`, without output and depfile
/// flags.
fn preprocessor_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if OUTPUT_WITH_VALUE.contains(&arg.as_str()) {
            iter.next();
        } else if !OUTPUT_FLAGS.contains(&arg.as_str())
            && !OUTPUT_WITH_VALUE.iter().any(|f| arg.starts_with(f))
        {
            out.push(arg.clone());
        }
    }
    out.push("-E".to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::preprocessor_args;

    #[test]
    fn outputs_and_depfiles_are_dropped() {
        let args: Vec<String> = "-c a.c -o out/a.o -MD -MF a.d -MQ x -MTy -Iinc -O2 -DX"
            .split(' ')
            .map(String::from)
            .collect();
        assert_eq!(
            preprocessor_args(&args),
            ["a.c", "-Iinc", "-O2", "-DX", "-E"]
        );
    }
}
