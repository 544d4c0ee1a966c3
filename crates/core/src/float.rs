//! JSON output of `f32` values by their shortest exact text (`0.363`, not the
//! `0.3630000054836273` that a widening to `f64` prints), also when a result
//! passes through `serde_json::Value` on its way to PostgreSQL.

use serde::Serializer;
use serde::ser::SerializeSeq;

fn widen(x: f32) -> f64 {
    // f32's Display is the shortest text that reads back as the same f32.
    x.to_string().parse().unwrap_or(x as f64)
}

pub fn f32_short<S: Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(widen(*x))
}

pub fn points_short<S: Serializer>(points: &[[f32; 2]; 5], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(points.len()))?;
    for p in points {
        seq.serialize_element(&[widen(p[0]), widen(p[1])])?;
    }
    seq.end()
}

pub fn vec_short<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(values.len()))?;
    for v in values {
        seq.serialize_element(&widen(*v))?;
    }
    seq.end()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize)]
    struct T {
        #[serde(serialize_with = "super::f32_short")]
        x: f32,
        #[serde(serialize_with = "super::points_short")]
        p: [[f32; 2]; 5],
    }

    #[test]
    fn prints_shortest_text_even_through_value() {
        let t = T { x: 0.363, p: [[329.198, 1.0]; 5] };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v.to_string(),
            r#"{"p":[[329.198,1.0],[329.198,1.0],[329.198,1.0],[329.198,1.0],[329.198,1.0]],"x":0.363}"#
        );
    }
}
