package score.client;

/**
 * Rows could not be scored: the server refused them (its own sentence is in the message), the
 * retries gave up, or an input row is bad (a null feature, a wrong width). Thrown from the
 * iterator {@link Scorer#score} returns, so the Spark task fails and Spark retries it; no row is
 * ever skipped silently.
 */
public class ScoreException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** @param message what failed, and why */
    public ScoreException(String message) {
        super(message);
    }
}
