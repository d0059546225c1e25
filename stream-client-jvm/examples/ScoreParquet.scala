import org.apache.spark.sql.SparkSession
import score.client.Scorer

/** Scores a Parquet file of `id` + `features` (an array column) with a fleet of score-servers
  * and writes `id` + `score` to Parquet, from Scala:
  * {{{
  * spark-submit --jars score-client.jar --class ScoreParquet examples.jar \
  *   http://scorer-1:8099,http://scorer-2:8099 s3a://bucket/features/ s3a://bucket/scores/
  * }}}
  * scripts/test-jvm.sh compiles it and test_jvm.py runs it. The Java version is ScoreParquet.java
  * beside it.
  */
object ScoreParquet {
  def main(args: Array[String]): Unit = {
    val Array(urls, input, output) = args
    val spark = SparkSession.builder().appName("score-parquet").getOrCreate()
    // Pinned on the driver to the version served now: every executor scores with it.
    val builder = Scorer.builder(urls.split(","): _*)
    val scorer = builder.modelVersion(builder.build().servedVersion()).build()
    val df = spark.read.parquet(input)
    scorer.transform(df, Array("features"), Array("id"), "score")
      .write.mode("overwrite").parquet(output)
    println(s"rows=${spark.read.parquet(output).count()}")
    spark.stop()
  }
}
