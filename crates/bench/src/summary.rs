//! Median, min and max over runs: the median is what a noisy shared machine can repeat, the
//! range says how noisy it was.

use serde::Serialize;

/// One metric over all runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The middle value (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Every run's value, in run order.
    pub runs: Vec<f64>,
}

/// Summarises `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (first, last) = (*sorted.first()?, *sorted.last()?);
    let mid = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        f64::midpoint(sorted[mid - 1], sorted[mid])
    };
    Some(Summary {
        median,
        min: first,
        max: last,
        runs: values.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_counts_take_the_middle_value() {
        let s = summarize(&[3.0, 1.0, 2.0]).expect("three values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.runs, vec![3.0, 1.0, 2.0]);
    }

    #[test]
    fn even_counts_average_the_two_middle_values() {
        let s = summarize(&[4.0, 1.0]).expect("two values");
        assert_eq!(s.median, 2.5);
    }

    #[test]
    fn no_runs_no_summary() {
        assert_eq!(summarize(&[]), None);
    }
}
