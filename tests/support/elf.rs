//! Reading a built ELF binary for tests that inspect its code: its function symbols (`nm`)
//! where its GOT lies, and the 8-byte word stored at a virtual address (through its loaded
//! segments).

use std::collections::HashMap;

/// Function symbols of `binary` by address, demangled.
pub fn symbols(binary: &str) -> HashMap<u64, String> {
    output_of("nm", &["-C", binary])
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let address = u64::from_str_radix(parts.next()?, 16).ok()?;
            let kind = parts.next()?;
            let name = parts.next()?;
            ["t", "T", "w", "W", "i"]
                .contains(&kind)
                .then(|| (address, name.to_string()))
        })
        .collect()
}

/// The little-endian word at virtual address `address` of a 64-bit ELF `image`, if a
/// loaded segment holds it in the file.
pub fn word_at(image: &[u8], address: u64) -> Option<u64> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(image.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(image.get(at..at + 8)?.try_into().ok()?));
    let table = usize::try_from(u64_at(0x20)?).ok()?;
    for i in 0..usize::from(u16_at(0x38)?) {
        let header = table + i * 56;
        let (kind, offset) = (u32_at(header)?, u64_at(header + 8)?);
        let (start, size) = (u64_at(header + 16)?, u64_at(header + 32)?);
        if kind == 1 && (start..start + size).contains(&address) {
            return u64_at(usize::try_from(offset + address - start).ok()?);
        }
    }
    None
}

/// The address ranges of `binary`'s GOT sections (`.got`, `.got.plt`), from `objdump -h`.
pub fn got_ranges(binary: &str) -> Vec<std::ops::Range<u64>> {
    output_of("objdump", &["-h", binary])
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (name, size, vma) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let size = u64::from_str_radix(size, 16).ok()?;
            let vma = u64::from_str_radix(vma, 16).ok()?;
            name.starts_with(".got").then_some(vma..vma + size)
        })
        .collect()
}

/// The standard output of a binutils `program` run with `args`.
fn output_of(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (binutils) runs: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
