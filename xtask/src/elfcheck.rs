//! Checks of a linked bare-metal image: it must be a static, fixed-address ELF with the PVH
//! entry note, no interpreter, no dynamic section, no undefined symbols, no writable and
//! executable segment, and nothing from the host C library.

use crate::Result;
use object::Endianness;
use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, ProgramHeader, Sym};
use std::path::Path;

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems, each a sentence; empty means the image is good.
    pub problems: Vec<String>,
    /// The PVH entry address.
    pub pvh_entry: Option<u32>,
    /// Lowest and highest loaded address.
    pub load_range: Option<(u64, u64)>,
    /// Checks that could not run on this image (no problem found, but none looked for).
    pub warnings: Vec<String>,
}

/// Symbol name prefixes that only the host C library (glibc, libm, libpthread, libdl) defines.
const HOST_LIBC: &[&str] = &[
    "__libc_",
    "__GI_",
    "_dl_",
    "__pthread",
    "pthread_",
    "__errno_location",
    "__cxa_finalize",
    "__stack_chk_fail",
    "dlopen",
    "dlsym",
    "getauxval",
    "__ieee754_",
    "_IO_",
    "__fortify_fail",
];

/// Checks the image at `path`.
pub fn check(path: &Path) -> Result<Report> {
    let data = std::fs::read(path)?;
    Ok(check_bytes(&data))
}

/// Checks an image held in memory.
pub fn check_bytes(data: &[u8]) -> Report {
    let mut r = Report::default();
    let Ok(hdr) = FileHeader64::<Endianness>::parse(data) else {
        r.problems.push("not a 64-bit ELF file".into());
        return r;
    };
    let Ok(e) = hdr.endian() else {
        r.problems.push("unknown ELF byte order".into());
        return r;
    };
    if hdr.e_machine(e) != elf::EM_X86_64 {
        r.problems.push("not an x86_64 ELF file".into());
    }
    if hdr.e_type(e) != elf::ET_EXEC {
        r.problems.push(
            "not a fixed-address executable (ET_EXEC): it is position-independent or a library"
                .into(),
        );
    }
    let Ok(phdrs) = hdr.program_headers(e, data) else {
        r.problems.push("unreadable program headers".into());
        return r;
    };
    let mut lo = u64::MAX;
    let mut hi = 0;
    for ph in phdrs {
        match ph.p_type(e) {
            elf::PT_INTERP => r
                .problems
                .push("has an interpreter (PT_INTERP): it was linked dynamically".into()),
            elf::PT_DYNAMIC => r
                .problems
                .push("has a dynamic section (PT_DYNAMIC): it was linked dynamically".into()),
            elf::PT_LOAD => {
                let (v, m, f) = (ph.p_vaddr(e), ph.p_memsz(e), ph.p_flags(e));
                lo = lo.min(v);
                hi = hi.max(v + m);
                if f & elf::PF_W != 0 && f & elf::PF_X != 0 {
                    r.problems
                        .push(format!("segment at {v:#x} is both writable and executable"));
                }
            }
            elf::PT_NOTE => {
                if let Ok(Some(mut notes)) = ph.notes(e, data) {
                    while let Ok(Some(n)) = notes.next() {
                        if n.name() == b"Xen" && n.n_type(e) == 18 && n.desc().len() >= 4 {
                            let d = n.desc();
                            r.pvh_entry = Some(u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if lo <= hi {
        r.load_range = Some((lo, hi));
        if lo < 0x10_0000 {
            r.problems.push(format!(
                "loads at {lo:#x}, below 1 MiB where the loader keeps its own data"
            ));
        }
    } else {
        r.problems.push("has no loadable segment".into());
    }
    if r.pvh_entry.is_none() {
        r.problems.push("has no PVH entry note (Xen ELF note 18, XEN_ELFNOTE_PHYS32_ENTRY) in a PT_NOTE segment".into());
    }

    // Symbols: undefined ones mean the link relied on something the image does not have;
    // host libc names mean glibc was linked in.
    let sections = match hdr.sections(e, data) {
        Ok(s) => s,
        Err(err) => {
            r.problems.push(format!(
                "unreadable section headers ({err}): its symbols could not be checked"
            ));
            return r;
        }
    };
    match sections.symbols(e, data, elf::SHT_SYMTAB) {
        Err(err) => r.problems.push(format!(
            "unreadable symbol table ({err}): undefined symbols and host C library code could not be looked for"
        )),
        Ok(symtab) if symtab.is_empty() => r.warnings.push(
            "no symbol table (stripped?): undefined symbols and host C library code could not be looked for; check the image before stripping it".into(),
        ),
        Ok(symtab) => {
            let mut undefined = Vec::new();
            let mut libc = Vec::new();
            let mut unnamed = 0;
            for s in symtab.iter().skip(1) {
                let Ok(name) = s.name(e, symtab.strings()) else {
                    unnamed += 1;
                    continue;
                };
                let name = String::from_utf8_lossy(name).into_owned();
                if name.is_empty()
                    || s.st_type() == elf::STT_FILE
                    || s.st_type() == elf::STT_SECTION
                {
                    continue;
                }
                if s.st_shndx(e) == elf::SHN_UNDEF && s.st_bind() != elf::STB_WEAK {
                    undefined.push(name.clone());
                }
                if HOST_LIBC.iter().any(|p| name.starts_with(p)) || name.contains("@GLIBC") {
                    libc.push(name);
                }
            }
            if !undefined.is_empty() {
                undefined.sort();
                undefined.dedup();
                r.problems
                    .push(format!("has undefined symbols: {}", summarize(&undefined)));
            }
            if !libc.is_empty() {
                libc.sort();
                libc.dedup();
                r.problems.push(format!(
                    "links the host C library (libc/libm/libpthread): {}",
                    summarize(&libc)
                ));
            }
            if unnamed > 0 {
                r.problems.push(format!(
                    "{unnamed} symbols have unreadable names: they could not be checked"
                ));
            }
        }
    }
    for s in sections.iter() {
        if let Ok(name @ (b".interp" | b".dynamic")) = sections.section_name(e, s)
            && !r.problems.iter().any(|p| p.contains("dynamically"))
        {
            let n = String::from_utf8_lossy(name);
            r.problems
                .push(format!("has a {n} section: it was linked dynamically"));
        }
    }
    r
}

fn summarize(names: &[String]) -> String {
    const SHOW: usize = 8;
    let mut s = names
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOW {
        s.push_str(&format!(" and {} more", names.len() - SHOW));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_an_image() {
        assert_eq!(check_bytes(b"hello").problems, ["not a 64-bit ELF file"]);
    }

    /// A bare x86_64 ELF executable header: no segments, and `shnum` section headers at
    /// `shoff`.
    fn elf_header(shoff: u64, shnum: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        h.extend(elf::ET_EXEC.to_le_bytes());
        h.extend(elf::EM_X86_64.to_le_bytes());
        h.extend(1u32.to_le_bytes()); // e_version
        h.extend(0x10_0000u64.to_le_bytes()); // e_entry
        h.extend(0u64.to_le_bytes()); // e_phoff
        h.extend(shoff.to_le_bytes());
        h.extend(0u32.to_le_bytes()); // e_flags
        h.extend(64u16.to_le_bytes()); // e_ehsize
        h.extend(56u16.to_le_bytes()); // e_phentsize
        h.extend(0u16.to_le_bytes()); // e_phnum
        h.extend(64u16.to_le_bytes()); // e_shentsize
        h.extend(shnum.to_le_bytes());
        h.extend(0u16.to_le_bytes()); // e_shstrndx
        h
    }

    #[test]
    fn a_stripped_image_says_its_symbols_were_not_checked() {
        let r = check_bytes(&elf_header(0, 0));
        assert!(
            r.warnings.iter().any(|w| w.contains("no symbol table")),
            "{r:?}"
        );
    }

    #[test]
    fn unreadable_section_headers_are_a_problem_not_a_skipped_check() {
        let r = check_bytes(&elf_header(0x1000, 4));
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("unreadable section headers")),
            "{r:?}"
        );
    }

    #[test]
    fn a_host_executable_is_refused_with_reasons() {
        // The test binary itself: dynamically linked, PIE, no PVH note.
        let me = std::env::current_exe().unwrap();
        let r = check(&me).unwrap();
        let all = r.problems.join("\n");
        assert!(all.contains("no PVH entry note"), "{all}");
        assert!(
            all.contains("dynamically") || all.contains("position-independent"),
            "{all}"
        );
    }
}
