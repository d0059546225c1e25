import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.expr;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.when;

import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.lang.management.MemoryUsage;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import score.client.Scorer;

/**
 * The Spark jobs the JVM tests (test_jvm.py) and the benchmark (load-tests/jvm-throughput/run.sh) run
 * under spark-submit, with key=value arguments:
 *
 * <ul>
 *   <li>{@code job=parquet input=P output=O urls=U,V layout=array|columns [errors=column]
 *       [drop=N]}: scores a Parquet file of {@code id} + {@code features} (array&lt;float&gt;),
 *       as that array or as separate columns {@code f0..}, the last {@code drop} left out;
 *       writes {@code id}, the score (and the error column) to Parquet. {@code features=C}
 *       names the feature column instead (a string column {@code text} for an embedding model,
 *       with {@code model=NAME} and {@code truncate=1}); {@code nulls=N} makes every row whose
 *       {@code id} is a multiple of N null in {@code features} (rows that cannot be sent);
 *   <li>{@code job=limit input=P urls=U}: {@code limit(10)} of the scored rows, collected;
 *       with {@code hold=1} the JVM then waits for its stdin to close;
 *   <li>{@code job=heap rows=N width=W urls=U}: N generated rows of W features in one
 *       partition, scored into the noop sink while a thread samples the heap; prints {@code
 *       heap_live_peak_mb=} (the most heap found live after a full collection).
 * </ul>
 *
 * Prints {@code rows=}, {@code seconds=} and the client's counters on stdout.
 */
public final class ScoreJob {
    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        SparkSession spark = SparkSession.builder().appName("score-client-jvm-" + a.get("job"))
                .getOrCreate();
        spark.sparkContext().setLogLevel("ERROR");
        Scorer.Builder builder = Scorer.builder(a.get("urls").split(","));
        if (a.containsKey("errors")) {
            builder.errors(a.get("errors"));
        }
        if (a.containsKey("in_flight")) {
            builder.inFlight(Integer.parseInt(a.get("in_flight")));
        }
        if (a.containsKey("model")) {
            builder.model(a.get("model"));
        }
        if (a.containsKey("truncate")) {
            builder.truncate(a.get("truncate").equals("1"));
        }
        if (a.containsKey("batch_rows")) {
            builder.batchRows(Integer.parseInt(a.get("batch_rows")));
        }
        if (a.containsKey("model_version")) {
            String version = a.get("model_version");
            // "served": pinned on the driver to the version served now.
            builder.modelVersion(
                    version.equals("served") ? builder.build().servedVersion() : version);
        }
        Scorer scorer = builder.build();
        System.out.println("scorer=" + scorer);
        long start = System.nanoTime();
        long rows;
        switch (a.get("job")) {
            case "parquet": {
                Dataset<Row> df = spark.read().parquet(a.get("input"));
                if (a.containsKey("nulls")) {
                    df = df.withColumn("features",
                            when(col("id").mod(Long.parseLong(a.get("nulls"))).equalTo(0),
                                    lit(null)).otherwise(col("features")));
                }
                String[] features = {a.getOrDefault("features", "features")};
                if (a.getOrDefault("layout", "array").equals("columns")) {
                    int width = Integer.parseInt(a.getOrDefault("width", "100"))
                            - Integer.parseInt(a.getOrDefault("drop", "0"));
                    List<Column> cols = new ArrayList<>();
                    cols.add(col("id"));
                    features = new String[width];
                    for (int i = 0; i < width; i++) {
                        features[i] = "f" + i;
                        cols.add(col("features").getItem(i).as(features[i]));
                    }
                    df = df.select(cols.toArray(new Column[0]));
                }
                Dataset<Row> scored = scorer.transform(df, features, new String[] {"id"},
                        "score");
                scored.write().mode("overwrite").parquet(a.get("output"));
                rows = spark.read().parquet(a.get("output")).count();
                break;
            }
            case "limit": {
                Dataset<Row> df = spark.read().parquet(a.get("input"));
                List<Row> first = scorer
                        .transform(df, new String[] {"features"}, new String[] {"id"}, "score")
                        .limit(10).collectAsList();
                rows = first.size();
                break;
            }
            case "heap": {
                long n = Long.parseLong(a.get("rows"));
                int width = Integer.parseInt(a.get("width"));
                Dataset<Row> df = spark.range(0, n, 1, 1).select(col("id"),
                        expr("transform(sequence(1, " + width + "), i -> cast(sin(id * i) as"
                                + " float))").as("features"));
                HeapSampler sampler = new HeapSampler();
                sampler.start();
                scorer.transform(df, new String[] {"features"}, new String[] {"id"}, "score")
                        .write().format("noop").mode("overwrite").save();
                sampler.stop = true;
                sampler.join();
                rows = n;
                System.out.printf("heap_live_peak_mb=%.1f%n", sampler.peak / 1048576.0);
                System.out.printf("heap_read_peak_mb=%.1f%n", sampler.peakRead / 1048576.0);
                break;
            }
            default:
                throw new IllegalArgumentException("unknown job " + a.get("job"));
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.println("rows=" + rows);
        // local[2]: the executors are this JVM, so these are the job's.
        System.out.println("pinned_version=" + Scorer.pinnedVersion());
        System.out.println("limits=" + Scorer.limits().values());
        System.out.printf("seconds=%.3f%n", seconds);
        System.out.println("stats=" + Scorer.stats());
        System.out.flush();
        if (a.containsKey("hold")) {
            // The test looks at the servers while this JVM still lives; it closes stdin.
            while (System.in.read() >= 0) {
                // until EOF
            }
        }
        spark.stop();
    }

    /**
     * The most heap found live: every 250 ms a full collection, then the heap in use just after
     * it, as the collector itself reports it (what other threads allocate between the collection
     * and a later reading of the heap is garbage, not growth: on a busy machine that gap was tens
     * of MiB). The pools' after-collection figures alone are stale between old-generation
     * collections, hence the forced one.
     */
    static final class HeapSampler extends Thread {
        volatile boolean stop;
        volatile long peak;
        /** The most heap in use read after a collection, for comparison. */
        volatile long peakRead;

        HeapSampler() {
            setDaemon(true);
        }

        @Override
        public void run() {
            MemoryMXBean memory = ManagementFactory.getMemoryMXBean();
            Set<String> heapPools = ManagementFactory.getMemoryPoolMXBeans().stream()
                    .filter(p -> p.getType() == MemoryType.HEAP).map(MemoryPoolMXBean::getName)
                    .collect(Collectors.toSet());
            // The collector of full collections (G1 Old Generation, MarkSweepCompact, ...).
            com.sun.management.GarbageCollectorMXBean full = null;
            for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
                if (gc.getName().matches(".*(Old|MarkSweep|Full).*")
                        && gc instanceof com.sun.management.GarbageCollectorMXBean) {
                    full = (com.sun.management.GarbageCollectorMXBean) gc;
                }
            }
            while (!stop) {
                memory.gc();
                long live = memory.getHeapMemoryUsage().getUsed();
                peakRead = Math.max(peakRead, live);
                if (full != null && full.getLastGcInfo() != null) {
                    live = 0;
                    for (Map.Entry<String, MemoryUsage> pool :
                            full.getLastGcInfo().getMemoryUsageAfterGc().entrySet()) {
                        if (heapPools.contains(pool.getKey())) {
                            live += pool.getValue().getUsed();
                        }
                    }
                }
                peak = Math.max(peak, live);
                try {
                    Thread.sleep(250);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }
}
