package lakehouse.governance

import java.util.{List => JList}

import scala.jdk.CollectionConverters._

import org.apache.hadoop.hive.conf.HiveConf
import org.apache.hadoop.hive.ql.security.HiveAuthenticationProvider
import org.apache.hadoop.hive.ql.security.authorization.plugin._
import org.apache.hadoop.hive.ql.security.authorization.plugin.HivePrivilegeObject.HivePrivilegeObjectType
import org.apache.spark.SparkEnv

/** The JDBC/ODBC metadata calls (getTables, getColumns: HiveServer2 operations that read the catalog without a
  * SQL statement) authorized against the same policies (Hive's authorization hook,
  * `hive.security.authorization.manager`). Hive passes the schemas a getTables pattern matches, or the tables of a
  * getColumns: a call is refused when one of them is not the user's; clients list one schema at a time. */
class MetadataAuthorizerFactory extends HiveAuthorizerFactory {
  override def createHiveAuthorizer(metastore: HiveMetastoreClientFactory, conf: HiveConf,
      authenticator: HiveAuthenticationProvider, context: HiveAuthzSessionContext): HiveAuthorizer =
    new MetadataAuthorizer
}

class MetadataAuthorizer extends AbstractHiveAuthorizer {
  private def unsupported: Nothing =
    throw new HiveAuthzPluginException("grants and roles live in infra/governance/policies.yaml")

  override def checkPrivileges(operation: HiveOperationType, inputs: JList[HivePrivilegeObject],
      outputs: JList[HivePrivilegeObject], context: HiveAuthzContext): Unit =
    Governance.clientUser().foreach { user =>
      val policy = Governance.policyOf(user, SparkEnv.get.conf.get(Governance.PoliciesConf, ""))
      val hidden = Option(inputs).map(_.asScala.toSeq).getOrElse(Seq.empty).flatMap { o =>
        o.getType match {
          case HivePrivilegeObjectType.DATABASE
              if !policy.schemas.exists(_.matcher(o.getDbname.toLowerCase).matches()) => Some(o.getDbname)
          case HivePrivilegeObjectType.TABLE_OR_VIEW
              if !policy.mayRead(s"${o.getDbname}.${o.getObjectName}".toLowerCase) =>
            Some(s"${o.getDbname}.${o.getObjectName}")
          case _ => None
        }
      }
      if (hidden.nonEmpty)
        throw new HiveAccessControlException(s"Permission denied: user [$user] (role ${policy.role}) may not list " +
          s"${hidden.map(_.toLowerCase).distinct.sorted.mkString(", ")} (${operation.name()})")
    }

  override def filterListCmdObjects(objects: JList[HivePrivilegeObject],
      context: HiveAuthzContext): JList[HivePrivilegeObject] = objects
  override def getVersion: HiveAuthorizer.VERSION = HiveAuthorizer.VERSION.V1
  override def applyAuthorizationConfigPolicy(conf: HiveConf): Unit = ()
  override def getCurrentRoleNames: JList[String] = java.util.Collections.emptyList()
  override def needTransform(): Boolean = false
  override def applyRowFilterAndColumnMasking(context: HiveAuthzContext,
      objects: JList[HivePrivilegeObject]): JList[HivePrivilegeObject] = objects
  override def grantPrivileges(principals: JList[HivePrincipal], privileges: JList[HivePrivilege],
      target: HivePrivilegeObject, grantor: HivePrincipal, grantOption: Boolean): Unit = unsupported
  override def revokePrivileges(principals: JList[HivePrincipal], privileges: JList[HivePrivilege],
      target: HivePrivilegeObject, grantor: HivePrincipal, grantOption: Boolean): Unit = unsupported
  override def createRole(role: String, admin: HivePrincipal): Unit = unsupported
  override def dropRole(role: String): Unit = unsupported
  override def getPrincipalGrantInfoForRole(role: String): JList[HiveRoleGrant] = unsupported
  override def getRoleGrantInfoForPrincipal(principal: HivePrincipal): JList[HiveRoleGrant] = unsupported
  override def grantRole(principals: JList[HivePrincipal], roles: JList[String], grantOption: Boolean,
      grantor: HivePrincipal): Unit = unsupported
  override def revokeRole(principals: JList[HivePrincipal], roles: JList[String], grantOption: Boolean,
      grantor: HivePrincipal): Unit = unsupported
  override def getAllRoles: JList[String] = unsupported
  override def showPrivileges(principal: HivePrincipal, target: HivePrivilegeObject): JList[HivePrivilegeInfo] =
    unsupported
  override def setCurrentRole(role: String): Unit = unsupported
}
