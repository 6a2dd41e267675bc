//! Reading a policy directory: every `.rego` file and every `data.json` / `data.yaml`,
//! with a content revision.
//!
//! The directory is often a mounted ConfigMap, whose real files live in a hidden
//! timestamped folder reached through the `..data` symlink. Entries whose names start
//! with `.` are skipped and the user-visible paths are followed, so each file is read
//! exactly once, through the symlinks the kubelet swaps.

use anyhow::{bail, Context, Result};
use regorus::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A bounded bundle: a policy directory should be small; a huge one is a mistake.
const MAX_FILES: usize = 1_000;
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// One Rego source file, named by its path relative to the bundle root.
#[derive(Debug, Clone)]
pub struct RegoFile {
    pub name: String,
    pub source: String,
}

/// One data file's document, wrapped at the file's directory path.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub name: String,
    pub document: Value,
}

/// The files of one policy directory, read at one moment.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// `sha256:` plus the first 16 hex digits of the digest over every file's name and bytes.
    pub revision: String,
    pub policies: Vec<RegoFile>,
    /// `*_test.rego` files: run by the test runner, never loaded into the serving engine.
    pub tests: Vec<RegoFile>,
    /// Data documents, each already wrapped at its path: a data file in `a/b/` lands
    /// under `data.a.b`. The engine deep-merges them.
    pub data: Vec<DataFile>,
}

impl Bundle {
    /// Reads the whole directory. Fails when it holds no policy, or on unreadable files.
    pub fn read(dir: &Path) -> Result<Bundle> {
        Bundle::read_with_libraries(dir, &[])
    }

    /// Reads the bundle directory together with library directories (shared Rego
    /// packages, typically `policies/lib`). A library's files are named
    /// `<library dir name>/<path>`; its data files land at their path within the
    /// library, as if the library were merged into the bundle's root.
    pub fn read_with_libraries(dir: &Path, libraries: &[PathBuf]) -> Result<Bundle> {
        let mut files = BTreeMap::new();
        collect(dir, dir, "", true, &mut files)?;
        for library in libraries {
            let prefix = library
                .file_name()
                .map_or("lib".into(), |n| n.to_string_lossy().into_owned());
            // A library's own tests run on the library alone (`lastmile policy test`);
            // loading them with every bundle would re-run them on every reload.
            collect(library, library, &format!("{prefix}/"), false, &mut files)?;
        }
        let mut hasher = Sha256::new();
        let mut policies = Vec::new();
        let mut tests = Vec::new();
        let mut data = Vec::new();
        for (name, (data_name, bytes)) in &files {
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
            let text =
                std::str::from_utf8(bytes).with_context(|| format!("{name} is not UTF-8"))?;
            if name.ends_with(".rego") {
                let file = RegoFile {
                    name: name.clone(),
                    source: text.to_string(),
                };
                if name.ends_with("_test.rego") {
                    tests.push(file);
                } else {
                    policies.push(file);
                }
            } else {
                let document = wrap_at(&data_path(data_name), parse_data(name, text)?);
                data.push(DataFile {
                    name: name.clone(),
                    document,
                });
            }
        }
        if policies.is_empty() {
            bail!("no .rego policy files in {}", dir.display());
        }
        let digest = hasher.finalize();
        let hex = crate::hex::encode(&digest[..8]);
        Ok(Bundle {
            revision: format!("sha256:{hex}"),
            policies,
            tests,
            data,
        })
    }
}

/// Files by name, each with the name that decides its data path, and its bytes.
type Files = BTreeMap<String, (String, Vec<u8>)>;

fn collect(
    root: &Path,
    dir: &Path,
    prefix: &str,
    with_tests: bool,
    files: &mut Files,
) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks: ConfigMap files are symlinks into `..data`.
        let meta =
            std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            collect(root, &path, prefix, with_tests, files)?;
        } else if is_bundle_file(name) && (with_tests || !name.ends_with("_test.rego")) {
            if meta.len() > MAX_FILE_BYTES {
                bail!("{} is larger than {MAX_FILE_BYTES} bytes", path.display());
            }
            if files.len() >= MAX_FILES {
                bail!("more than {MAX_FILES} files under {}", root.display());
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let data_name = relative(root, &path);
            let name = format!("{prefix}{data_name}");
            if files.insert(name.clone(), (data_name, bytes)).is_some() {
                bail!("{name} appears both in the bundle and in a library");
            }
        }
    }
    Ok(())
}

fn is_bundle_file(name: &str) -> bool {
    name.ends_with(".rego") || matches!(name, "data.json" | "data.yaml" | "data.yml")
}

fn relative(root: &Path, path: &Path) -> String {
    let rel: PathBuf = path.strip_prefix(root).unwrap_or(path).to_path_buf();
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn parse_data(name: &str, text: &str) -> Result<Value> {
    let json: serde_json::Value = if name.ends_with(".json") {
        serde_json::from_str(text).with_context(|| format!("{name} is not valid JSON"))?
    } else {
        serde_yaml_ng::from_str(text).with_context(|| format!("{name} is not valid YAML"))?
    };
    if !json.is_object() {
        bail!("{name} must hold an object at its top level");
    }
    Ok(Value::from(json))
}

/// The data path of a data file: its directory components (`a/b/data.json` → `[a, b]`).
fn data_path(name: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    parts
}

fn wrap_at(path: &[&str], doc: Value) -> Value {
    path.iter().rev().fold(doc, |inner, part| {
        let mut obj = BTreeMap::new();
        obj.insert(Value::from(*part), inner);
        Value::from(obj)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_policies_tests_and_nested_data_with_a_stable_revision() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.rego"), "package a\nx := 1\n")?;
        std::fs::write(
            dir.path().join("a_test.rego"),
            "package a\ntest_x if x == 1\n",
        )?;
        std::fs::write(dir.path().join("data.json"), r#"{"top": 1}"#)?;
        std::fs::create_dir(dir.path().join("limits"))?;
        std::fs::write(dir.path().join("limits/data.json"), r#"{"max": 5}"#)?;
        std::fs::create_dir(dir.path().join("..hidden"))?;
        std::fs::write(dir.path().join("..hidden/b.rego"), "package b")?;
        let bundle = Bundle::read(dir.path())?;
        assert_eq!(bundle.policies.len(), 1);
        assert_eq!(bundle.tests.len(), 1);
        assert_eq!(bundle.data.len(), 2);
        assert_eq!(bundle.data[0].document["top"], Value::from(1u64));
        assert_eq!(bundle.data[1].document["limits"]["max"], Value::from(5u64));
        assert_eq!(Bundle::read(dir.path())?.revision, bundle.revision);
        std::fs::write(dir.path().join("a.rego"), "package a\nx := 2\n")?;
        assert_ne!(Bundle::read(dir.path())?.revision, bundle.revision);
        Ok(())
    }

    #[test]
    fn libraries_are_read_under_their_own_name_and_change_the_revision() -> Result<()> {
        let bundle_dir = tempfile::tempdir()?;
        let root = tempfile::tempdir()?;
        let lib = root.path().join("lib");
        std::fs::create_dir(&lib)?;
        std::fs::write(bundle_dir.path().join("p.rego"), "package p\nx := 1\n")?;
        std::fs::write(lib.join("l.rego"), "package lastmile.lib.l\ny := 1\n")?;
        std::fs::write(lib.join("data.json"), r#"{"limits": {"max": 3}}"#)?;
        std::fs::write(
            lib.join("l_test.rego"),
            "package lastmile.lib.l_test\ntest_y if true\n",
        )?;
        let alone = Bundle::read(bundle_dir.path())?;
        let with = Bundle::read_with_libraries(bundle_dir.path(), std::slice::from_ref(&lib))?;
        let names: Vec<&str> = with.policies.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["lib/l.rego", "p.rego"]);
        assert!(
            with.tests.is_empty(),
            "a library's tests are not loaded with a bundle"
        );
        assert_eq!(with.data[0].document["limits"]["max"], Value::from(3u64));
        assert_ne!(alone.revision, with.revision);
        std::fs::create_dir(bundle_dir.path().join("lib"))?;
        std::fs::write(bundle_dir.path().join("lib/l.rego"), "package q")?;
        assert!(Bundle::read_with_libraries(bundle_dir.path(), &[lib]).is_err());
        Ok(())
    }

    #[test]
    fn empty_directory_and_bad_data_are_errors() -> Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(Bundle::read(dir.path()).is_err());
        std::fs::write(dir.path().join("a.rego"), "package a")?;
        std::fs::write(dir.path().join("data.json"), "[1]")?;
        assert!(Bundle::read(dir.path()).is_err());
        Ok(())
    }
}
