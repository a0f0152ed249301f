// The charts of `metafs compare`: gnuplot scripts (one line per setting) and the data files they
// read. Generated here as text (unit-tested); the CLI writes them and runs gnuplot.

public enum Gnuplot {
    public enum Format: String, Sendable, CaseIterable {
        case png, svg
        var terminal: String {
            switch self {
            case .png: "set terminal pngcairo size 960,540 noenhanced font 'sans,10'"
            case .svg: "set terminal svg size 960,540 noenhanced font 'sans,10' background '#ffffff'"
            }
        }
    }

    /// What a chart shows: the data file's column and the axis.
    public enum Chart: String, Sendable, CaseIterable {
        case slabMemory = "slab-memory"
        case pagesFreed = "pages-freed"
        case rss = "rss"
        var column: Int {
            switch self {
            case .slabMemory: 2
            case .pagesFreed: 3
            case .rss: 5
            }
        }
        var title: String {
            switch self {
            case .slabMemory: "slab memory"
            case .pagesFreed: "slab pages freed by reclaim (cumulative)"
            case .rss: "daemon RSS without the store mapping (anonymous: slabs, tables, heap)"
            }
        }
        var yLabel: String {
            switch self {
            case .slabMemory, .rss: "MiB"
            case .pagesFreed: "pages"
            }
        }
    }

    /// A data file for one (workload, setting): `t slab_mib pages_freed rss_mib anon_rss_mib` per
    /// sample, with pages freed counted from the run's first sample (anon_rss_mib is the whole RSS
    /// when the build does not split it).
    public static func data(_ samples: [CompareSample]) -> String {
        let s = samples.sorted { $0.t < $1.t }
        let base = s.first?.freedPages ?? 0
        var out = "# t slab_mib pages_freed rss_mib anon_rss_mib\n"
        for x in s {
            out += "\(Report.fixed(x.t, 3)) \(Report.fixed(Double(x.slabBytes) / 1_048_576, 3)) \(x.freedPages >= base ? x.freedPages - base : 0) \(Report.fixed(Double(x.rssBytes) / 1_048_576, 3)) \(Report.fixed(Double(x.rssAnonBytes ?? x.rssBytes) / 1_048_576, 3))\n"
        }
        return out
    }

    static func quote(_ s: String) -> String { "'" + s.replacingAll("'", with: "''") + "'" }

    /// A script drawing `chart` for `workload`: one line per (setting label, data file), into
    /// `output`. File names are relative to the directory gnuplot runs in.
    public static func script(workload: String, chart: Chart, lines: [(label: String, dataFile: String)],
                              output: String, format: Format, budgetMiB: Double? = nil) -> String {
        var out = """
            # metafs compare: \(workload), \(chart.title); draw it in this directory: gnuplot \(workload)-\(chart.rawValue).gp
            \(format.terminal)
            set output \(quote(output))
            set title \(quote("\(workload): \(chart.title)"))
            set xlabel 'seconds since mount'
            set ylabel \(quote(chart.yLabel))
            set key outside right top
            set grid
            set yrange [0:*]
            set style data lines

            """
        var plots = lines.map { "\(quote($0.dataFile)) using 1:\(chart.column) with lines lw 2 title \(quote($0.label))" }
        if chart == .slabMemory, let budgetMiB {
            plots.append("\(Report.fixed(budgetMiB, 3)) with lines dt 2 lc rgb '#888888' title 'budget'")
        }
        if plots.isEmpty { plots = ["NaN title 'no data'"] }
        out += "plot " + plots.joined(separator: ", \\\n     ") + "\n"
        return out
    }
}
