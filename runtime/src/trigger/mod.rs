//! Triggers from the outside world: callbacks and resumes (schedules and
//! queues come later).

pub mod callback;
pub mod resume;
pub mod schedule;
