package lakehouse.governance

import java.io.File
import java.nio.charset.StandardCharsets
import java.nio.file.Files
import java.security.MessageDigest
import java.util.Base64
import javax.crypto.SecretKeyFactory
import javax.crypto.spec.PBEKeySpec
import javax.security.sasl.AuthenticationException

import scala.jdk.CollectionConverters._

import org.apache.hive.service.auth.PasswdAuthenticationProvider

/** HiveServer2 password authentication (`hive.server2.authentication=CUSTOM`) against the accounts file named by
  * the environment variable LAKEHOUSE_SQL_ACCOUNTS: one `user:pbkdf2-sha256$iterations$salt$hash` line per account
  * (lakehouse.governance.accounts writes it outside the repository, readable by its owner only). The file is read
  * on each login, so accounts change without a restart. */
class PasswordAuthenticator extends PasswdAuthenticationProvider {
  override def Authenticate(user: String, password: String): Unit = {
    val path = sys.env.getOrElse("LAKEHOUSE_SQL_ACCOUNTS", "")
    val file = new File(path)
    if (path.isEmpty || !file.isFile) throw new AuthenticationException("no accounts file: login refused")
    val entry = Files.readAllLines(file.toPath, StandardCharsets.UTF_8).asScala
      .map(_.trim).filter(l => l.nonEmpty && !l.startsWith("#"))
      .map(_.split(":", 2)).collectFirst { case Array(name, hash) if name == user => hash }
    if (user == null || password == null || !entry.exists(matches(password, _)))
      throw new AuthenticationException(s"wrong user name or password for [$user]")
  }

  private def matches(password: String, stored: String): Boolean = stored.split("\\$") match {
    case Array("pbkdf2-sha256", iterations, salt, hash) =>
      val expected = Base64.getDecoder.decode(hash)
      val spec = new PBEKeySpec(password.toCharArray, Base64.getDecoder.decode(salt), iterations.toInt,
        expected.length * 8)
      val actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded
      MessageDigest.isEqual(actual, expected)
    case _ => false
  }
}
