package example;

import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import score.client.Scorer;

/**
 * Scores a Parquet dataset of {@code id} + {@code features} (an array column) with a fleet of
 * score-servers and writes {@code id} + {@code score} to Parquet:
 *
 * <pre>
 * javac -cp "score-client.jar:$SPARK_HOME/jars/*" -d classes ScoreParquet.java
 * jar --create --file job.jar -C classes .
 * spark-submit --jars score-client.jar --class example.ScoreParquet job.jar \
 *     http://scorer-1:8099,http://scorer-2:8099 s3a://bucket/features/ s3a://bucket/scores/
 * </pre>
 *
 * The Scala version is ScoreParquet.scala beside it.
 */
public final class ScoreParquet {
    private ScoreParquet() {}

    /**
     * Runs the job.
     *
     * @param args the servers' URLs, comma-separated; the input; the output
     */
    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println("usage: ScoreParquet URL[,URL...] INPUT OUTPUT");
            System.exit(2);
        }
        SparkSession spark = SparkSession.builder().appName("score-parquet").getOrCreate();
        // Pinned on the driver to the version served now: every executor scores with it.
        Scorer.Builder builder = Scorer.builder(args[0].split(","));
        Scorer scorer = builder.modelVersion(builder.build().servedVersion()).build();
        Dataset<Row> df = spark.read().parquet(args[1]);
        scorer.transform(df, new String[] {"features"}, new String[] {"id"}, "score")
                .write().mode("overwrite").parquet(args[2]);
        System.out.println("rows=" + spark.read().parquet(args[2]).count());
        spark.stop();
    }
}
