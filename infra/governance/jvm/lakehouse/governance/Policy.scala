package lakehouse.governance

import java.io.File
import java.util.regex.Pattern

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}

/** What one user may do, compiled from infra/governance/policies.yaml by lakehouse.governance.policies (Python
  * validates the policies and resolves roles, tags and the user's attributes; this side only looks things up).
  * Names are lower-case `schema.table`; patterns are anchored regular expressions over them. */
final case class UserPolicy(
    user: String,
    role: String,
    read: Seq[Pattern],
    schemas: Seq[Pattern], // schemas listed to the user: those holding something it may read
    write: Seq[Pattern],
    tableColumnMasks: Map[String, String], // schema.table.column -> SQL template over `{col}`
    globColumnMasks: Seq[(Pattern, String, String)], // (schema.table pattern, column, SQL template)
    rowFilters: Map[String, String], // schema.table -> SQL predicate
    settings: Set[String], // session settings (SET key=value) the user may change, lower-case
    createViews: Boolean // may create permanent views (read with their owner's rights)
) {
  def mayRead(table: String): Boolean = read.exists(_.matcher(table).matches())
  def mayWrite(table: String): Boolean = write.exists(_.matcher(table).matches())

  /** The mask of `column` of `table` for this user, if any (an exact table's entry before a pattern's). */
  def maskOf(table: String, column: String): Option[String] = {
    val name = column.toLowerCase
    tableColumnMasks.get(s"$table.$name").orElse(globColumnMasks.collectFirst {
      case (pattern, c, sql) if c == name && pattern.matcher(table).matches() => sql
    })
  }

  def rowFilterOf(table: String): Option[String] = rowFilters.get(table)
}

final case class Policies(version: String, users: Map[String, UserPolicy])

/** The compiled policy file, read again when it changes (a new policy needs no restart of the endpoint). */
object Policies {
  @volatile private var loaded: (String, Long, Policies) = ("", -1L, Policies("", Map.empty))

  def current(path: String): Policies = {
    val file = new File(path)
    val stamp = file.lastModified()
    val (loadedPath, loadedStamp, policies) = loaded
    if (loadedPath == path && loadedStamp == stamp) policies
    else synchronized {
      if (!file.isFile) throw new SecurityException(s"governance: no compiled policies at $path")
      val fresh = parse(new ObjectMapper().readTree(file))
      loaded = (path, stamp, fresh)
      AuditLog.policyLoaded(fresh.version)
      fresh
    }
  }

  private def strings(node: JsonNode): Seq[String] =
    if (node == null || node.isNull) Seq.empty else node.elements().asScala.map(_.asText()).toSeq

  private def stringMap(node: JsonNode): Map[String, String] =
    if (node == null || node.isNull) Map.empty
    else node.properties().asScala.map(e => e.getKey -> e.getValue.asText()).toMap

  def parse(root: JsonNode): Policies = {
    val users = root.get("users").properties().asScala.map { entry =>
      val u = entry.getValue
      entry.getKey -> UserPolicy(
        user = entry.getKey,
        role = u.get("role").asText(),
        read = strings(u.get("read")).map(Pattern.compile),
        schemas = strings(u.get("schemas")).map(Pattern.compile),
        write = strings(u.get("write")).map(Pattern.compile),
        globColumnMasks = Option(u.get("glob_column_masks")).toSeq.flatMap(_.elements().asScala).map(m =>
          (Pattern.compile(m.get("table").asText()), m.get("column").asText().toLowerCase, m.get("sql").asText())),
        tableColumnMasks = stringMap(u.get("table_column_masks")),
        rowFilters = stringMap(u.get("row_filters")),
        settings = strings(u.get("settings")).map(_.toLowerCase).toSet,
        createViews = u.path("create_views").asBoolean(false))
    }.toMap
    Policies(root.path("version").asText(""), users)
  }
}
