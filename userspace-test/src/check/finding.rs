//! What a check finds: a sentence at a level; and a region as the check sees it.

use std::path::PathBuf;

use serde::Serialize;

use crate::memmap::Span;

/// A region as its driver describes it (`CARVEOUT_GET_INFO`).
#[derive(Debug, Clone, Serialize)]
pub struct RegionView {
    pub path: PathBuf,
    pub name: String,
    pub span: Span,
    /// Pages mode: the region has `struct page`s (`CARVEOUT_MR_PAGES`).
    pub pages: bool,
    /// The size of a pages-mode region's folios (sysfs `pages_align`), 0 without pages.
    pub pages_align: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Note,
    /// Consistent, but something will not work as one may expect (a device whose IOMMU faults
    /// physical addresses).
    Warning,
    Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub level: Level,
    pub message: String,
}
