//! Where the region nodes are: `/dev/carveout<N>` and `/dev/carveout/<name>`.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Every region node: `/dev/carveout<N>` (the module parameter's region) and
/// `/dev/carveout/<name>` (regions made through configfs), sorted.
pub fn discover() -> Vec<PathBuf> {
    discover_in(Path::new("/dev"))
}

/// [`discover`] under another `/dev`.
pub fn discover_in(dev: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let is_numbered = |name: &str| {
        name.strip_prefix("carveout")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Ok(dir) = fs::read_dir(dev) {
        for e in dir.flatten() {
            if e.file_name().to_str().is_some_and(is_numbered) {
                found.push(e.path());
            }
        }
    }
    if let Ok(dir) = fs::read_dir(dev.join("carveout")) {
        found.extend(dir.flatten().map(|e| e.path()));
    }
    found.sort();
    found
}

/// The node for a region given by path (anything with a `/`) or by name: `carveout0` is
/// `/dev/carveout0`, any other name `/dev/carveout/<name>`.
pub fn resolve(spec: &str) -> PathBuf {
    if spec.contains('/') {
        PathBuf::from(spec)
    } else if spec
        .strip_prefix("carveout")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        Path::new("/dev").join(spec)
    } else {
        Path::new("/dev/carveout").join(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_resolve_to_nodes() {
        assert_eq!(resolve("carveout0"), Path::new("/dev/carveout0"));
        assert_eq!(resolve("memmap0"), Path::new("/dev/carveout/memmap0"));
        assert_eq!(resolve("carveout"), Path::new("/dev/carveout/carveout"));
        assert_eq!(resolve("./x"), Path::new("./x"));
        assert_eq!(resolve("/dev/carveout/dma"), Path::new("/dev/carveout/dma"));
    }

    #[test]
    fn discovery_finds_numbered_nodes_and_the_directory() {
        let dev = std::env::temp_dir().join(format!("carveout-dev-{}", std::process::id()));
        fs::create_dir_all(dev.join("carveout")).unwrap();
        for f in [
            "carveout0",
            "carveoutx",
            "null",
            "carveout/memmap0",
            "carveout/dma",
        ] {
            fs::write(dev.join(f), "").unwrap();
        }
        let found = discover_in(&dev);
        fs::remove_dir_all(&dev).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(&dev).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            ["carveout/dma", "carveout/memmap0", "carveout0"].map(PathBuf::from)
        );
    }
}
