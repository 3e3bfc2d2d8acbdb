//! The file list: what a release holds, written at the root of every
//! release tree as [`FILE_LIST`] and as the first entry of its archive: the
//! program, the version and every directory, file (sha256, size, mode) and
//! symlink. The list is installed with the release, so the next update knows
//! which files of the install dir belong to a release and which are the
//! user's.
//!
//! Parsing refuses what could hurt on any platform: absolute paths and `..`,
//! leapfrog's own names ([`crate::layout`]), names Windows or macOS cannot
//! hold (control characters, `<>:"|?*`, trailing dots and spaces, device
//! names, letter-case and Unicode-normalisation twins), and symlinks that
//! leave the tree.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use semver::Version;

use crate::error::{io_err, Error, Result};
use crate::os;

/// The file list's name, at the root of every release tree.
pub const FILE_LIST: &str = crate::layout::FILE_LIST;
pub(crate) const LIST_MARKER: &str = "# leapfrog release v";
pub(crate) const LIST_FORMAT: u32 = 1;
/// The largest file list accepted (it is read into memory).
pub(crate) const MAX_LIST_BYTES: u64 = 16 * 1024 * 1024;
/// The most items a release may have (entries are bounded by the list).
pub(crate) const MAX_ITEMS: usize = 200_000;

/// One item of a release.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Item {
    /// A directory.
    Dir,
    /// A regular file.
    File {
        /// Lowercase hex sha256 of the content.
        sha256: String,
        /// Size in bytes.
        size: u64,
        /// Whether it is executable.
        executable: bool,
    },
    /// A symlink, with its (relative) target.
    Link {
        /// The target as stored.
        target: String,
    },
}

/// The file list of a release: which program, which version, and every item
/// by its `/`-separated path relative to the release root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileList {
    /// The program.
    pub program: String,
    /// The version.
    pub version: Version,
    /// Every item, by path.
    pub items: BTreeMap<String, Item>,
}

impl FileList {
    /// Renders the list in its text form.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{LIST_MARKER}{LIST_FORMAT}\nprogram {}\nversion {}\n",
            self.program, self.version
        );
        for (path, item) in &self.items {
            match item {
                Item::Dir => out.push_str(&format!("dir {path}\n")),
                Item::File {
                    sha256,
                    size,
                    executable,
                } => {
                    let mode = if *executable { "755" } else { "644" };
                    out.push_str(&format!("file {sha256} {size} {mode} {path}\n"));
                }
                Item::Link { target } => out.push_str(&format!("link {target} {path}\n")),
            }
        }
        out
    }

    /// Parses the text form; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<FileList> {
        let bad = |line: usize, reason: String| Error::BadArchive {
            archive: origin.to_owned(),
            reason: format!("{FILE_LIST} line {line}: {reason}"),
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, l)) if l == format!("{LIST_MARKER}{LIST_FORMAT}") => {}
            Some((_, l)) if l.starts_with(LIST_MARKER) => {
                return Err(bad(1, format!("unsupported file list format {l:?}")))
            }
            _ => return Err(bad(1, "not a leapfrog file list".into())),
        }
        let mut field = |name: &str| -> Result<String> {
            match lines.next() {
                Some((n, l)) => l
                    .strip_prefix(name)
                    .and_then(|v| v.strip_prefix(' '))
                    .map(str::to_owned)
                    .ok_or_else(|| bad(n, format!("expected `{name} ...`"))),
                None => Err(bad(0, format!("ends before `{name}`"))),
            }
        };
        let program = field("program")?;
        let version_text = field("version")?;
        let version = Version::parse(&version_text)
            .map_err(|e| bad(3, format!("version {version_text:?}: {e}")))?;
        let mut items = BTreeMap::new();
        for (n, line) in lines {
            if items.len() >= MAX_ITEMS {
                return Err(bad(n, format!("too many entries (more than {MAX_ITEMS})")));
            }
            let (kind, rest) = line
                .split_once(' ')
                .ok_or_else(|| bad(n, "no path".into()))?;
            let (path, item) = match kind {
                "dir" => (rest, Item::Dir),
                "file" => {
                    let mut parts = rest.splitn(4, ' ');
                    let (Some(sha256), Some(size), Some(mode), Some(path)) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                    else {
                        return Err(bad(n, "expected `file SHA256 SIZE MODE PATH`".into()));
                    };
                    let size = size.parse().map_err(|_| bad(n, format!("size {size:?}")))?;
                    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad(n, format!("sha256 {sha256:?}")));
                    }
                    let executable = match mode {
                        "755" => true,
                        "644" => false,
                        other => return Err(bad(n, format!("mode {other:?} (755 or 644)"))),
                    };
                    let item = Item::File {
                        sha256: sha256.to_owned(),
                        size,
                        executable,
                    };
                    (path, item)
                }
                "link" => {
                    let (target, path) = rest
                        .split_once(' ')
                        .ok_or_else(|| bad(n, "expected `link TARGET PATH`".into()))?;
                    (
                        path,
                        Item::Link {
                            target: target.to_owned(),
                        },
                    )
                }
                other => return Err(bad(n, format!("unknown kind {other:?}"))),
            };
            check_relative(path).map_err(|reason| bad(n, format!("path {path:?}: {reason}")))?;
            check_portable(path).map_err(|reason| bad(n, format!("path {path:?}: {reason}")))?;
            if let Some(name) = crate::layout::reserved_component(path) {
                return Err(bad(n, reserved_message(path, name)));
            }
            if items.insert(path.to_owned(), item).is_some() {
                return Err(bad(n, format!("{path:?} listed twice")));
            }
        }
        check_twins(items.keys()).map_err(|reason| bad(0, reason))?;
        let list = FileList {
            program,
            version,
            items,
        };
        for path in list.items.keys() {
            if let Some(link) = list.link_above(path) {
                return Err(bad(
                    0,
                    format!("{path:?} lies beneath the symlink {link:?}"),
                ));
            }
        }
        for (path, item) in &list.items {
            if let Item::Link { target } = item {
                list.check_link(path, target).map_err(|reason| {
                    bad(0, format!("symlink {path:?} -> {target:?}: {reason}"))
                })?;
            }
        }
        Ok(list)
    }

    /// Reads the list installed at the root of `dir`, if there is one.
    pub fn read_installed(dir: &Path) -> Result<Option<FileList>> {
        let path = dir.join(FILE_LIST);
        match fs::read_to_string(&path) {
            Ok(text) => FileList::parse(&text, &path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// The total size of the release's files.
    pub fn total_size(&self) -> u64 {
        self.items
            .values()
            .map(|i| match i {
                Item::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    /// A symlink of the list that is a proper ancestor of `path`.
    fn link_above<'a>(&'a self, path: &str) -> Option<&'a str> {
        let mut prefix = path;
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if let Some((k, Item::Link { .. })) = self.items.get_key_value(parent) {
                return Some(k);
            }
            prefix = parent;
        }
        None
    }

    /// Resolves a symlink inside the tree, following other symlinks of the
    /// list, and refuses it when it would lead outside the release root.
    fn check_link(&self, path: &str, target: &str) -> Result<(), String> {
        if target.starts_with('/')
            || target.contains('\\')
            || target.contains(':')
            || target.is_empty()
        {
            return Err("the target must be a relative path".into());
        }
        let mut stack: Vec<&str> = path.split('/').collect();
        stack.pop();
        self.walk(&mut stack, target, 0)
    }

    fn walk<'a>(
        &'a self,
        stack: &mut Vec<&'a str>,
        target: &'a str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 32 {
            return Err("too many levels of symlinks".into());
        }
        for part in target.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if stack.pop().is_none() {
                        return Err("it points outside the release".into());
                    }
                }
                name => {
                    stack.push(name);
                    let joined = stack.join("/");
                    if let Some(Item::Link { target: next }) = self.items.get(&joined) {
                        stack.pop();
                        self.walk(stack, next, depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Checks that a stored path is relative, `/`-separated and made of plain names.
pub(crate) fn check_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') || path.contains('\0') {
        return Err("absolute or non-portable path");
    }
    if path.contains('\n') || path.contains('\r') {
        return Err("line break in the name");
    }
    if path.chars().any(char::is_control) {
        return Err("control character in the name");
    }
    for part in path.split('/') {
        match part {
            "" | "." => return Err("empty or '.' component"),
            ".." => return Err("'..' component"),
            _ => {}
        }
    }
    Ok(())
}

/// Why a name that works on Linux would break on Windows or macOS, if it would.
fn check_portable(path: &str) -> Result<(), String> {
    for part in path.split('/') {
        if let Some(c) = part.chars().find(|c| "<>:\"|?*\\".contains(*c)) {
            return Err(format!("{c:?} cannot be in a file name on Windows"));
        }
        if part.ends_with('.') || part.ends_with(' ') {
            return Err(format!(
                "{part:?} ends with a dot or a space, which Windows drops"
            ));
        }
        let stem = part
            .split('.')
            .next()
            .unwrap_or(part)
            .trim_end()
            .to_uppercase();
        let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
            || (stem.len() == 4
                && (stem.starts_with("COM") || stem.starts_with("LPT"))
                && stem.as_bytes()[3].is_ascii_digit());
        if device {
            return Err(format!("{part:?} is a device name on Windows"));
        }
    }
    Ok(())
}

/// Refuses two paths that are one file where names ignore letter case or
/// Unicode normalisation (Windows, macOS).
fn check_twins<'a>(paths: impl Iterator<Item = &'a String>) -> Result<(), String> {
    use unicode_normalization::UnicodeNormalization;
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for path in paths {
        let folded: String = path.nfc().collect::<String>().to_lowercase();
        if let Some(other) = seen.insert(folded, path) {
            return Err(format!(
                "{other:?} and {path:?} differ only in letter case or Unicode normalisation: \
                 they would be one file on Windows and macOS; rename one"
            ));
        }
    }
    Ok(())
}

fn reserved_message(path: &str, name: &str) -> String {
    format!(
        "{path:?}: the name {name:?} is leapfrog's own ({}, in any letter case); \
         remove it from the release",
        crate::layout::reserved_names().join(", ")
    )
}

/// Builds the file list of the tree at `dir` (skipping any [`FILE_LIST`]
/// in it), each file's sha256 left all zeros: the packer hashes each file
/// as it reads it, once.
pub(crate) fn list_tree_unhashed(dir: &Path, program: &str, version: &Version) -> Result<FileList> {
    let mut items = BTreeMap::new();
    walk_tree(dir, dir, &mut items)?;
    let list = FileList {
        program: program.to_owned(),
        version: version.clone(),
        items,
    };
    // Validate links the same way unpacking will, so a publish fails early.
    let text = list.render();
    FileList::parse(&text, dir).map_err(|e| Error::Publish(format!("{dir:?}: {e}")))?;
    Ok(list)
}

fn walk_tree(root: &Path, dir: &Path, items: &mut BTreeMap<String, Item>) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_err("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        let path = entry.path();
        let rel = path.strip_prefix(root).expect("walk stays below its root");
        let rel = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str().map(str::to_owned),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Publish(format!("{path:?}: file names must be UTF-8")))?
            .join("/");
        if rel == FILE_LIST {
            continue;
        }
        if let Some(name) = crate::layout::reserved_component(&rel) {
            return Err(Error::Publish(reserved_message(
                &path.to_string_lossy(),
                name,
            )));
        }
        check_relative(&rel).map_err(|r| Error::Publish(format!("{path:?}: {r}")))?;
        let meta = fs::symlink_metadata(&path).map_err(io_err("reading", &path))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading link", &path))?;
            let target = target
                .to_str()
                .ok_or_else(|| Error::Publish(format!("{path:?}: link target must be UTF-8")))?;
            items.insert(
                rel,
                Item::Link {
                    target: target.replace('\\', "/"),
                },
            );
        } else if ft.is_dir() {
            items.insert(rel, Item::Dir);
            walk_tree(root, &path, items)?;
        } else if ft.is_file() {
            items.insert(
                rel,
                Item::File {
                    sha256: "0".repeat(64),
                    size: meta.len(),
                    executable: os::is_executable(&meta),
                },
            );
        } else {
            return Err(Error::Publish(format!(
                "{path:?} is neither a file, a directory nor a symlink; remove it from the release"
            )));
        }
    }
    Ok(())
}

/// The path of `rel` (a `/`-separated list path) below `root`.
pub fn join(root: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(root.to_owned(), |p, part| p.join(part))
}
#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[(&str, Item)]) -> FileList {
        FileList {
            program: "p".into(),
            version: Version::new(1, 0, 0),
            items: items
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn link(t: &str) -> Item {
        Item::Link { target: t.into() }
    }

    #[test]
    fn links_inside_the_tree_are_allowed() {
        let l = list(&[
            ("d", Item::Dir),
            ("d/a", link("../b")),
            ("b", link("d")),
            ("c", link("./d/../b")),
        ]);
        assert!(FileList::parse(&l.render(), Path::new("t")).is_ok());
    }

    #[test]
    fn links_escaping_the_tree_are_refused() {
        for items in [
            vec![("a", link("/etc/passwd"))],
            vec![("a", link(".."))],
            vec![("d", Item::Dir), ("d/a", link("../../x"))],
            // lexically inside, really outside: d/l is the root, so d/l/.. is above it
            vec![("d", Item::Dir), ("d/l", link("..")), ("e", link("d/l/.."))],
            vec![("a", link("a"))],
        ] {
            let l = list(&items);
            assert!(
                FileList::parse(&l.render(), Path::new("t")).is_err(),
                "{items:?}"
            );
        }
    }

    #[test]
    fn entries_beneath_a_link_are_refused() {
        let l = list(&[("d", link(".")), ("d/x", Item::Dir)]);
        let err = FileList::parse(&l.render(), Path::new("t"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("beneath the symlink"), "{err}");
    }
}
