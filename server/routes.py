"""Every blueprint of the service, in one list the app factory registers."""

from server.audit.routes import bp as audit
from server.auth.routes import bp as auth
from server.debug.routes import bp as debug
from server.flags.routes import bp as flags
from server.health.routes import bp as health
from server.merchants.routes import bp as merchants
from server.offers.routes import bp as offers
from server.payouts.routes import bp as payouts
from server.purchases.routes import bp as purchases
from server.users.routes import bp as users
from server.wallets.routes import bp as wallets

BLUEPRINTS = [health, debug, users, auth, merchants, offers, purchases, wallets, payouts, flags, audit]
