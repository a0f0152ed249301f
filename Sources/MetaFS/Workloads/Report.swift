// Number formatting shared by the workload, watch and compare output (no Foundation, no locale).

public enum Report {
    /// `v` with exactly `decimals` digits after the point ("12.30"); "-" for NaN or infinity.
    public static func fixed(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return "-" }
        return ControlRendering.fixed(v, decimals)
    }

    /// Right-aligned in `width` columns (left-aligned with `left`); longer text is kept whole.
    public static func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        ControlRendering.pad(s, width, left: left)
    }

    /// Bytes in slabtop's style: "123K", "1.5M".
    public static func kilobytes(_ bytes: UInt64) -> String {
        let k = Double(bytes) / 1024
        return k < 10_000 ? "\(Int(k.rounded()))K" : fixed(k / 1024, 1) + "M"
    }

    public static func mebibytes(_ bytes: UInt64) -> String { fixed(Double(bytes) / 1_048_576, 1) }
}
