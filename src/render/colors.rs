//! Colour maps: scanpy's categorical palettes and viridis.

use egui::Color32;

/// scanpy's `default_20` (vega 20 with scanpy's changes), used for up to 20 categories.
pub const DEFAULT_20: [&str; 20] = [
    "#1f77b4", "#ff7f0e", "#279e68", "#d62728", "#aa40fc", "#8c564b", "#e377c2", "#b5bd61",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#dbdb8d", "#9edae5", "#ad494a", "#8c6d31",
];

/// scanpy's `default_28` (Zeileis et al. 2009), used for 21 to 28 categories.
pub const DEFAULT_28: [&str; 28] = [
    "#023fa5", "#7d87b9", "#bec1d4", "#d6bcc0", "#bb7784", "#8e063b", "#4a6fe3", "#8595e1",
    "#b5bbe3", "#e6afb9", "#e07b91", "#d33f6a", "#11c638", "#8dd593", "#c6dec7", "#ead3c6",
    "#f0b98d", "#ef9708", "#0fcfc0", "#9cded6", "#d5eae7", "#f3e1eb", "#f6c4e1", "#f79cd4",
    "#7f7f7f", "#c7c7c7", "#1ce6ff", "#336600",
];

/// Parses `#rrggbb` (or `#rrggbbaa`); `None` when malformed.
pub fn parse_hex(s: &str) -> Option<Color32> {
    let h = s.strip_prefix('#')?;
    let v = |i: usize| u8::from_str_radix(h.get(i..i + 2)?, 16).ok();
    match h.len() {
        6 => Some(Color32::from_rgb(v(0)?, v(2)?, v(4)?)),
        8 => Some(Color32::from_rgba_unmultiplied(v(0)?, v(2)?, v(4)?, v(6)?)),
        _ => None,
    }
}

/// Colours for `n` categories: `uns['<key>_colors']` when it has enough valid entries, else
/// scanpy's palette for that many categories (golden-angle hues beyond 28).
pub fn categorical(n: usize, uns: Option<&[String]>) -> Vec<Color32> {
    if let Some(u) = uns {
        let parsed: Vec<Color32> = u.iter().filter_map(|s| parse_hex(s)).collect();
        if parsed.len() >= n && n > 0 {
            return parsed[..n].to_vec();
        }
    }
    if n <= 20 {
        DEFAULT_20[..n]
            .iter()
            .map(|s| parse_hex(s).expect("palette"))
            .collect()
    } else if n <= 28 {
        DEFAULT_28[..n]
            .iter()
            .map(|s| parse_hex(s).expect("palette"))
            .collect()
    } else {
        (0..n)
            .map(|i| {
                egui::ecolor::Hsva::new((i as f32 * 0.618_034).fract(), 0.65, 0.85, 1.0).into()
            })
            .collect()
    }
}

const VIRIDIS: [[u8; 3]; 10] = [
    [0x44, 0x01, 0x54],
    [0x48, 0x28, 0x78],
    [0x3e, 0x49, 0x89],
    [0x31, 0x68, 0x8e],
    [0x26, 0x82, 0x8e],
    [0x1f, 0x9e, 0x89],
    [0x35, 0xb7, 0x79],
    [0x6e, 0xce, 0x58],
    [0xb5, 0xde, 0x2b],
    [0xfd, 0xe7, 0x25],
];

/// Viridis at `t` in `[0, 1]` (matplotlib's map, 10 stops, linear between them).
pub fn viridis(t: f32) -> Color32 {
    let t = t.clamp(0.0, 1.0) * 9.0;
    let i = (t.floor() as usize).min(8);
    let f = t - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let m = |k: usize| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * f).round() as u8;
    Color32::from_rgb(m(0), m(1), m(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palettes() {
        assert_eq!(
            parse_hex("#1f77b4"),
            Some(Color32::from_rgb(0x1f, 0x77, 0xb4))
        );
        assert_eq!(parse_hex("1f77b4"), None);
        assert_eq!(categorical(3, None)[2], parse_hex("#279e68").expect("hex"));
        let uns = vec!["#000000".to_string(), "#ffffff".to_string()];
        assert_eq!(categorical(2, Some(&uns))[1], Color32::WHITE);
        assert_eq!(categorical(25, None)[0], parse_hex("#023fa5").expect("hex"));
        assert_eq!(categorical(40, None).len(), 40);
        assert_eq!(viridis(0.0), Color32::from_rgb(0x44, 0x01, 0x54));
        assert_eq!(viridis(1.0), Color32::from_rgb(0xfd, 0xe7, 0x25));
    }
}
