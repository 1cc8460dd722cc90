//! HTML rendering of the pages, one module per part: words, frame, status page, map, site
//! page, charts, report.

use super::*;

mod charts;
mod frame;
mod index;
mod map;
mod report;
mod site;
mod words;

pub use charts::*;
pub(in crate::web::status) use frame::*;
pub use index::*;
pub use map::*;
pub use report::*;
pub use site::*;
pub(crate) use words::*;
