//! One module per measurement; each returns a serialisable result that `report/`
//! turns into the JSON, the Markdown table and the plot.

pub mod api;
pub mod claim;
pub mod consumer;
pub mod e2e;
pub mod relay;
pub mod saturation;
