import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import scala.collection.immutable.ArraySeq;
import score.client.Scorer;

/**
 * The Java Spark job of load-tests/jvm-throughput/run.sh, three ways in one JVM: Spark's floor (the
 * same rows through mapPartitions, k zeros out, no model), the jar ({@code Scorer.transform}),
 * and a plain {@code java.net.http.HttpClient} posting one batch at a time. Arguments: url,
 * parquet path (id + features array&lt;float&gt;, from spark_bench.py), rounds, batch rows.
 * Prints one markdown table row per variant (median seconds of the rounds).
 */
public final class JvmBench {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        String data = args[1];
        int rounds = Integer.parseInt(args[2]);
        int batchRows = Integer.parseInt(args[3]);
        SparkSession spark = SparkSession.builder().appName("jvm-bench").getOrCreate();
        spark.sparkContext().setLogLevel("ERROR");
        Dataset<Row> df = spark.read().parquet(data).cache();
        long rows = df.count();

        Scorer scorer = Scorer.builder(url).batchRows(batchRows).inFlight(4).build();
        int k = scorer.scoreColumns();
        StructType out = DataTypes.createStructType(Arrays.asList(
                DataTypes.createStructField("id", DataTypes.LongType, false),
                DataTypes.createStructField("score",
                        DataTypes.createArrayType(DataTypes.FloatType, false), false)));

        Map<String, Supplier<Dataset<Row>>> variants = new LinkedHashMap<>();
        variants.put("Spark's floor: mapPartitions over Rows, k zeros out",
                () -> df.mapPartitions((MapPartitionsFunction<Row, Row>) it -> zeros(it, k),
                        Encoders.row(out)));
        variants.put("(j) score-client.jar (Scorer.transform)",
                () -> scorer.transform(df, new String[] {"features"}, new String[] {"id"},
                        "score"));
        variants.put("(h) HttpClient, one batch at a time",
                () -> df.mapPartitions(
                        (MapPartitionsFunction<Row, Row>) it -> new OneAtATime(it, url,
                                batchRows, k),
                        Encoders.row(out)));

        Map<String, List<Double>> seconds = new LinkedHashMap<>();
        for (String v : variants.keySet()) {
            seconds.put(v, new ArrayList<>());
        }
        for (int round = 0; round < rounds; round++) {
            for (Map.Entry<String, Supplier<Dataset<Row>>> v : variants.entrySet()) {
                long start = System.nanoTime();
                v.getValue().get().write().format("noop").mode("overwrite").save();
                seconds.get(v.getKey()).add((System.nanoTime() - start) / 1e9);
            }
        }
        for (Map.Entry<String, List<Double>> s : seconds.entrySet()) {
            List<Double> sorted = new ArrayList<>(s.getValue());
            sorted.sort(null);
            double median = sorted.get(sorted.size() / 2);
            System.out.printf("| %s | %.2f | %,.0f |%n", s.getKey(), median, rows / median);
        }
        spark.stop();
    }

    static Iterator<Row> zeros(Iterator<Row> in, int k) {
        return new Iterator<Row>() {
            @Override
            public boolean hasNext() {
                return in.hasNext();
            }

            @Override
            public Row next() {
                Row r = in.next();
                r.getList(1).size(); // the features are read, as a scorer would
                return RowFactory.create(r.getLong(0), ArraySeq.unsafeWrapArray(new float[k]));
            }
        };
    }

    /** The plain way: collect a batch, POST it, wait for the answer, hand out its rows. */
    static final class OneAtATime implements Iterator<Row> {
        private static final HttpClient HTTP = HttpClient.newHttpClient();
        private final Iterator<Row> in;
        private final URI uri;
        private final int batchRows;
        private final int k;
        private final ArrayList<Row> ready = new ArrayList<>();
        private int next;

        OneAtATime(Iterator<Row> in, String url, int batchRows, int k) {
            this.in = in;
            this.uri = URI.create(url + "/score");
            this.batchRows = batchRows;
            this.k = k;
        }

        @Override
        public boolean hasNext() {
            if (next < ready.size()) {
                return true;
            }
            ready.clear();
            next = 0;
            if (!in.hasNext()) {
                return false;
            }
            List<Long> ids = new ArrayList<>();
            ByteBuffer body = null;
            int n = 0;
            while (n < batchRows && in.hasNext()) {
                Row r = in.next();
                List<Object> f = r.getList(1);
                if (body == null) {
                    body = ByteBuffer.allocate(batchRows * f.size() * 4)
                            .order(ByteOrder.LITTLE_ENDIAN);
                }
                for (Object x : f) {
                    body.putFloat(((Number) x).floatValue());
                }
                ids.add(r.getLong(0));
                n++;
            }
            byte[] bytes = Arrays.copyOf(body.array(), body.position());
            HttpRequest request = HttpRequest.newBuilder(uri)
                    .header("Content-Type", "application/octet-stream")
                    .POST(HttpRequest.BodyPublishers.ofByteArray(bytes)).build();
            HttpResponse<byte[]> response;
            try {
                response = HTTP.send(request, HttpResponse.BodyHandlers.ofByteArray());
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
            if (response.statusCode() != 200) {
                throw new RuntimeException("HTTP " + response.statusCode() + ": "
                        + new String(response.body()));
            }
            ByteBuffer scores = ByteBuffer.wrap(response.body()).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < n; i++) {
                float[] s = new float[k];
                for (int j = 0; j < k; j++) {
                    s[j] = scores.getFloat();
                }
                ready.add(RowFactory.create(ids.get(i), ArraySeq.unsafeWrapArray(s)));
            }
            return true;
        }

        @Override
        public Row next() {
            if (!hasNext()) {
                throw new java.util.NoSuchElementException();
            }
            return ready.get(next++);
        }
    }
}
