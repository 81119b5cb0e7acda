package lakehouse.governance

import java.io.{File, FileOutputStream}
import java.nio.charset.StandardCharsets
import java.time.{Instant, ZoneOffset}

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.ObjectMapper
import org.apache.spark.sql.SparkSession

/** Append-only JSON lines under the audit directory, one file per UTC day: every client statement the endpoint
  * analysed (user, role, statement, what it read and named, allowed or refused and why) and every policy version
  * it loaded. `lakehouse.governance.audit` copies them into the Delta table `ops.audit_log`. */
object AuditLog {
  private val mapper = new ObjectMapper()
  @volatile private var directory: String = ""

  def configure(dir: String): Unit = if (dir != directory) directory = dir

  def statement(session: SparkSession, policy: UserPolicy, access: Access, refusal: Option[String]): Unit = {
    val context = session.sparkContext
    write(Map(
      "event" -> "statement",
      "user" -> policy.user,
      "role" -> policy.role,
      "statement_id" -> Option(context.getLocalProperty("spark.jobGroup.id")).getOrElse(""),
      "statement" -> Option(context.getLocalProperty("spark.job.description")).getOrElse(""),
      "reads" -> access.reads.toSeq.sorted.asJava,
      "targets" -> access.targets.toSeq.sorted.asJava,
      "commands" -> access.commands.distinct.asJava,
      "decision" -> (if (refusal.isEmpty) "allowed" else "denied"),
      "reason" -> refusal.getOrElse("")))
  }

  def policyLoaded(version: String): Unit =
    write(Map("event" -> "policy_loaded", "policy_version" -> version, "user" -> "", "role" -> ""))

  private def write(fields: Map[String, Any]): Unit = {
    val dir = directory
    if (dir.nonEmpty) {
      val now = Instant.now()
      val record = new java.util.LinkedHashMap[String, Any]()
      record.put("event_time", now.toString)
      fields.foreach { case (k, v) => record.put(k, v) }
      val line = (mapper.writeValueAsString(record) + "\n").getBytes(StandardCharsets.UTF_8)
      val file = new File(dir, s"audit-${now.atOffset(ZoneOffset.UTC).toLocalDate}.jsonl")
      synchronized {
        file.getParentFile.mkdirs()
        val out = new FileOutputStream(file, true)
        try out.write(line) finally out.close()
      }
    }
  }
}
