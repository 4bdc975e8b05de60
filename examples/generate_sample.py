"""Generate the synthetic demo sample: examples/conversations.jsonl.

The sample imitates a support inbox of "Tallyboard", a fictional B2B SaaS app for team
projects and invoicing. It exists so `make demo` and tests have realistic, varied input:
recurring problems of different sizes and time profiles, one-off noise, HTML bodies,
e-mail signatures, quoted replies, bot greetings and internal notes.

Everything is synthetic and deterministic: the same SEED always yields the same file
(stdlib only, no network). Run:  python examples/generate_sample.py [--out PATH]

`labels.problem` and `labels.type` are the intended answers, for evaluation only; the
pipeline must never read them.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20261115  # fixed so the committed file is reproducible byte for byte
END = datetime(2026, 11, 15, 18, 0, tzinfo=UTC)  # last day of the sample window
WINDOW_DAYS = 120  # length of the sample window in days
CUSTOMER_POOL = 140  # distinct customers; fewer than conversations so some repeat
HTML_SHARE = 0.12  # share of customer/agent messages rendered as HTML e-mail bodies
SIGNATURE_SHARE = 0.18  # share of first customer messages ending in an e-mail signature
QUOTED_SHARE = 0.35  # share of customer follow-ups that quote the previous agent reply
BOT_SHARE = 0.12  # share of conversations opened by the chat bot greeting
NOTE_SHARE = 0.15  # share of conversations with an internal note
SUPPORT_ADDRESS = "help@tallyboard.io"
APP_URL = "https://app.tallyboard.io"
INBOX_URL = "https://inbox.tallyboard.io/conversations/"

OUT_DEFAULT = Path(__file__).with_name("conversations.jsonl")


@dataclass
class Problem:
    """One recurring (or noise) topic and the phrase banks used to write about it."""

    key: str
    type: str
    count: int
    profile: str  # rising | fading | steady | burst
    subjects: list[str]
    symptoms: list[str]
    details: list[str]
    asks: list[str]
    agent: list[str]
    followups: list[str]
    tags: list[str] = field(default_factory=list)
    article: str = ""  # help-center slug the agent links (how-to extension only); "" = no article exists
    article_title: str = ""  # that article's title, quoted by agents instead of the URL some of the time
    stuck: list[str] = field(default_factory=list)  # customer comes back after the article: still cannot do it
    confusing_share: float = 0.0  # share of conversations where the customer comes back stuck after the link


GREETINGS = [
    "Hi,",
    "Hello,",
    "Hi there,",
    "Hey team,",
    "Good morning,",
    "Hello support,",
    "Hi folks,",
    "",
    "",
    "Hey,",
    "Dear Tallyboard team,",
    "Hi all,",
]
CLOSINGS = [
    "Thanks",
    "Thanks in advance!",
    "Cheers",
    "Any help appreciated.",
    "",
    "Thank you,",
    "Appreciate it.",
    "Best regards",
    "",
    "thx",
]
AGENT_GREETINGS = [
    "Hi {first},",
    "Hello {first},",
    "Hi {first}, thanks for reaching out.",
    "Thanks for the message, {first}.",
    "Hey {first}!",
    "Hi {first}, sorry about this.",
]
AGENT_SIGNOFFS = [
    "Best, {agent}",
    "Cheers, {agent}",
    "{agent} | Tallyboard Support",
    "Kind regards,\n{agent}",
    "— {agent}",
]
AGENTS = ["Maya", "Tom", "Priya", "Lukas", "Ines", "Omar"]
AGENT_FOLLOWUPS = [
    "Thanks for the update, I've added this to the ticket and will keep you posted.",
    "Understood. I've shared this with the engineers working on it.",
    "Thanks for confirming. I'll follow up as soon as I hear back from the team.",
    "Got it, thank you. Let me check and get back to you today.",
    "Sorry this is still causing trouble. I've bumped the priority on our side.",
]
CLOSE_CUSTOMER = [
    "Thanks, that worked.",
    "Perfect, thank you!",
    "ok great, closing this",
    "Got it, thanks.",
    "Thanks for the quick answer.",
    "Great, appreciate the help.",
]
CLOSE_AGENT = [
    "Glad to hear it! I'll close this conversation, reply any time if it comes back.",
    "Happy to help. Have a good week!",
    "You're welcome. Marking this as solved.",
    "Great! Let us know if anything else comes up.",
]

PROBLEMS: list[Problem] = [
    Problem(
        "csv_export_timeout",
        "bug",
        34,
        "rising",
        [
            "CSV export not working",
            "Export times out",
            "Can't export project",
            "export fails",
            "Timesheet export broken",
            "504 on export",
            "Export to CSV stuck",
        ],
        [
            "When I export our project to CSV it just spins and then fails with a timeout.",
            "the CSV export has been timing out for our biggest project since last week",
            "Exporting tasks to CSV gives me a 504 Gateway Timeout after about a minute.",
            "I click Export > CSV on the project and nothing ever downloads, the progress bar sits at 90% then errors out.",
            "Our monthly timesheet export no longer finishes. Small projects are fine, the big one (about 40k tasks) always fails.",
            "CSV export keeps failing with 'Request timed out, please try again'.",
            "I've tried exporting the Q3 project five times today and every attempt dies with a timeout error.",
            "export to csv is broken for large projects, it worked fine in the summer",
            "The export button works for some boards but for our main client project we just get an error page after waiting forever.",
        ],
        [
            "It has roughly 38,000 tasks and 2 years of history.",
            "We need this file for month-end billing with our client.",
            "Tried Chrome and Firefox, same result.",
            "Filtering to one month doesn't help either.",
            "Our finance team relies on this every Monday.",
            "Smaller projects export in a few seconds.",
            "Our accountant is waiting on this.",
        ],
        [
            "Is there a workaround?",
            "Can you send me the file another way?",
            "Is this a known issue?",
            "Please fix asap.",
            "What can we do?",
            "Can someone look into it?",
        ],
        [
            "Thanks for reporting this. Large CSV exports are currently hitting a time limit on our side; engineering is working on making exports run in the background. In the meantime I've generated the file manually and sent it to your email.",
            "I can reproduce the timeout on projects with more than ~25k tasks. As a workaround you can export per list (List menu > Export) which keeps each file small.",
            "Sorry about that! This is a known issue with very large projects and we're tracking it. Could you tell me the project name so I can add it to the ticket?",
            "Our team is aware that exports over a certain size time out. I've attached your project to the bug report and will update you when the fix ships.",
        ],
        [
            "Per-list export works but it's 30 lists, that's painful.",
            "Thanks for the file. Any ETA on a real fix? We do this every week.",
            "It's the project called 'Northwind retainer'.",
            "Still failing today, just so you know.",
            "The file you sent is missing the custom fields column though.",
        ],
        ["export", "bug"],
    ),
    Problem(
        "sso_login_loop",
        "bug",
        20,
        "burst",
        [
            "SSO login loop",
            "SAML redirect loop",
            "Can't sign in with Okta",
            "Login loops back",
            "Azure AD SSO broken",
            "SSO issue",
        ],
        [
            "Since this morning our whole team is stuck in a redirect loop when logging in through SSO.",
            "After authenticating with Okta we get sent back to the Tallyboard login page, which sends us to Okta again, forever.",
            "SAML login goes in circles: Azure AD says we're signed in, Tallyboard shows the login screen again.",
            "Clicking 'Sign in with SSO' bounces between your site and our IdP about 10 times and then the browser gives up with ERR_TOO_MANY_REDIRECTS.",
            "our users can't get into the app via single sign-on, the page keeps reloading",
            "SSO has stopped working for us. The SAML response seems to be accepted but the session never sticks.",
        ],
        [
            "Nothing changed in our IdP config.",
            "It happens in every browser, incognito too.",
            "Password login for the admin account still works.",
            "About 60 people are locked out right now.",
            "We use Okta with SP-initiated login.",
            "We rotated our certificate last month but it worked after that.",
        ],
        [
            "This is urgent.",
            "Please escalate.",
            "Can you check the logs for our domain?",
            "Any idea what's going on?",
            "Is there an outage?",
        ],
        [
            "Sorry for the trouble. We deployed a change to session cookies yesterday that affects some SAML setups. Engineering is rolling it back now; I'll update you within the hour.",
            "Thanks, I can see repeated SAML assertions for your domain in our logs. Could you send a HAR file of the login attempt so we can confirm?",
            "This looks like the SSO loop we're investigating. As a workaround an admin can enable 'Allow password login' under Settings > Security while we fix it.",
            "We've identified a problem with the SameSite cookie on the SSO callback. A fix is being deployed.",
        ],
        [
            "HAR file attached.",
            "The workaround helped for now, thanks.",
            "Still looping for some users in Firefox.",
            "Confirmed it works again on our side.",
        ],
        ["sso", "login", "bug"],
    ),
    Problem(
        "invoice_wrong_vat",
        "bug",
        14,
        "steady",
        [
            "Wrong VAT on invoices",
            "Invoice currency wrong",
            "Invoices show USD instead of EUR",
            "VAT calculation issue",
            "Tax rate wrong on client invoice",
        ],
        [
            "The invoices we send to our clients show the wrong VAT rate, 19% instead of 21%.",
            "Invoices generated from Tallyboard are in USD even though the client is set to EUR.",
            "Our client in Germany received an invoice with 0% VAT although they are not reverse-charge.",
            "the currency on our invoices switched to dollars after we edited the client record",
            "Tax on the invoice PDF doesn't match the tax shown in the invoice editor.",
            "VAT is being applied twice on line items that have a discount.",
        ],
        [
            "Our company settings say EUR and NL VAT.",
            "We had to cancel and re-issue three invoices already.",
            "Our accountant spotted it during the quarterly return.",
            "Only invoices created from time entries are affected, manual ones look fine.",
            "The client's country is set correctly.",
        ],
        [
            "Can you fix the existing invoices?",
            "How do we correct this?",
            "This is a compliance problem for us.",
            "Please advise.",
        ],
        [
            "Thanks for the details. I've reproduced the issue: invoices created from time entries ignore the client-level currency. I've reported it to our invoicing team.",
            "Sorry about this. You can override the tax rate on each invoice (Invoice > Tax) until we fix the default rate selection.",
            "This is a bug in how discounted lines are taxed. Engineering has a fix in review; I'll let you know once it ships.",
        ],
        [
            "Overriding works but it's manual for every invoice.",
            "Ok, please keep me posted.",
            "We have 40 invoices per month, we can't fix them by hand.",
        ],
        ["invoicing", "bug"],
    ),
    Problem(
        "mobile_attachment_crash",
        "bug",
        22,
        "steady",
        [
            "App crashes when uploading",
            "iOS app crash",
            "Android crash on attachment",
            "Mobile app closes when attaching photo",
            "Crash on upload",
        ],
        [
            "The iPhone app crashes every time I try to attach a photo to a task.",
            "Mobile app closes itself as soon as I pick a file to upload.",
            "On Android, attaching a PDF to a comment makes the app crash instantly.",
            "When I take a picture from inside the app to attach it, the app just quits.",
            "our field team can't upload site photos anymore, the app crashes",
            "Uploading an attachment from my phone kills the app. Every single time.",
            "The app freezes then crashes when adding attachments bigger than a few MB.",
        ],
        [
            "iPhone 15, iOS 19.1, app version 4.12.",
            "Pixel 8, latest app from the Play Store.",
            "Reinstalling didn't help.",
            "Uploads from the desktop web app work fine.",
            "It started after the last app update.",
            "Small screenshots sometimes work, camera photos never do.",
        ],
        ["Is a fix coming?", "Can you look into it?", "Any workaround?", "This blocks our field staff."],
        [
            "Thanks for letting us know. We've had a few reports of crashes on upload with version 4.12 and our mobile team is on it. Could you send your device model and OS version?",
            "Sorry about that! As a workaround, uploading through the mobile browser at app.tallyboard.io works. A fixed app version is in review with the stores.",
            "I've passed this on to our mobile engineers along with your crash details. I'll update this conversation when the fix is out.",
        ],
        [
            "Mobile browser works, thanks, but the team prefers the app.",
            "Updated to 4.13 and it still crashes.",
            "Device is Samsung S23, Android 15.",
        ],
        ["mobile", "bug"],
    ),
    Problem(
        "webhook_delay",
        "bug",
        12,
        "fading",
        ["Webhooks delayed", "Webhook events late", "Slow webhook delivery", "Webhooks arriving hours later"],
        [
            "Webhook deliveries for task.updated are arriving 2-3 hours late.",
            "Our integration receives your webhooks with a huge delay, sometimes the next day.",
            "We noticed the webhook events are delayed by 30+ minutes since yesterday.",
            "webhooks are very slow to arrive, our Slack bot posts updates hours after the fact",
            "The delivery log shows events queued for a long time before they're sent.",
        ],
        [
            "Our endpoint responds in under 200ms.",
            "Nothing changed on our side.",
            "The delivery log shows status 'pending' for a long time.",
            "We depend on these for our billing sync.",
        ],
        ["Is there a problem on your end?", "Can you check?", "Is this expected?"],
        [
            "Thanks for flagging. We had a backlog in our webhook queue and added capacity; deliveries should be catching up now.",
            "We're aware of delays in webhook delivery and are working on it. Events aren't lost, they'll be delivered in order.",
            "I checked your endpoint: deliveries are being retried because of occasional timeouts on your side, which adds delay. Could you check your server logs?",
        ],
        ["Looks better now, thanks.", "Still seeing 20 minute delays today.", "Our logs show no timeouts."],
        ["webhooks", "api", "bug"],
    ),
    Problem(
        "calendar_sync_duplicates",
        "bug",
        15,
        "rising",
        [
            "Duplicate calendar events",
            "Google Calendar sync duplicates",
            "Outlook sync creates copies",
            "Calendar sync issue",
        ],
        [
            "Every task due date now appears two or three times in my Google Calendar.",
            "The Outlook calendar sync is creating duplicate events for every deadline.",
            "Since connecting the calendar integration, our shared calendar is full of duplicates.",
            "calendar sync keeps adding the same event again each time it syncs",
            "My calendar has 6 copies of the same milestone now.",
        ],
        [
            "Disconnecting and reconnecting didn't help.",
            "Deleting the duplicates doesn't help, they come back.",
            "It's happening to everyone in our team who uses the sync.",
            "We use Google Workspace.",
        ],
        ["How do I stop this?", "Can you fix it?", "Is there a way to clean this up?"],
        [
            "Sorry about the clutter! We're investigating an issue where recurring syncs create duplicates. Please disconnect the integration for now; I'll let you know when it's fixed.",
            "Thanks for the report. I've added your account to the bug ticket for the calendar sync duplicates.",
            "Could you tell me whether you connected the calendar from more than one Tallyboard workspace? That can cause duplicates.",
        ],
        ["Only one workspace, yes.", "Ok, disconnected for now.", "It's still duplicating after the update."],
        ["integrations", "calendar", "bug"],
    ),
    Problem(
        "password_reset_email",
        "account_access",
        18,
        "steady",
        [
            "Password reset email not received",
            "Can't reset password",
            "No reset email",
            "Locked out of my account",
            "Reset link never arrives",
        ],
        [
            "I requested a password reset three times but the email never arrives.",
            "I'm locked out of my account, the reset password email doesn't come through.",
            "The 'forgot password' link says an email was sent but I never get anything, not even in spam.",
            "can't log in, and the password reset mail is not arriving",
            "One of my colleagues can't get into her account because the reset email isn't delivered.",
            "I forgot my password and the reset email is nowhere to be found.",
        ],
        [
            "I checked spam and promotions.",
            "Our domain is on Microsoft 365.",
            "It worked for me a few months ago.",
            "My email is definitely correct.",
        ],
        ["Can you reset it manually?", "How do I get back in?", "Please help, I need to send invoices today."],
        [
            "I can see our emails to your address are being rejected by your mail server. Could you ask IT to allowlist help@tallyboard.io and noreply@tallyboard.io?",
            "I've sent a new reset link directly. It is valid for 1 hour.",
            "For security reasons I can't change the password myself, but I've re-triggered the reset email and it shows as delivered on our side.",
        ],
        ["Got it this time, thanks!", "Still nothing arrived.", "IT allowlisted it and it arrived."],
        ["login", "email"],
    ),
    Problem(
        "request_dark_mode",
        "feature_request",
        10,
        "steady",
        ["Dark mode?", "Feature request: dark theme", "Dark mode please", "Night theme"],
        [
            "Would it be possible to add a dark mode?",
            "Any plans for a dark theme? Staring at a white screen all evening is rough.",
            "Feature request: please add dark mode to the web app.",
            "It would be great if Tallyboard had a dark mode like most tools do now.",
            "Our devs keep asking me whether there will be a dark theme.",
        ],
        [
            "Especially for the board view.",
            "Even just following the OS setting would be enough.",
            "The mobile app would need it too.",
        ],
        ["Is it on the roadmap?", "Thanks for considering!", ""],
        [
            "Thanks for the suggestion! Dark mode is on our list and I've added your vote.",
            "Great idea, I've passed it to our product team. No date yet, but I've recorded your request.",
        ],
        ["Thanks, fingers crossed.", "Please let me know when it's on the roadmap."],
        ["feature-request", "ui"],
    ),
    Problem(
        "request_bulk_edit",
        "feature_request",
        16,
        "rising",
        [
            "Bulk edit tasks",
            "Feature request: edit multiple tasks",
            "Change many tasks at once",
            "Mass update tasks?",
            "Bulk actions",
        ],
        [
            "Is there a way to change the assignee of many tasks at once? If not, please add it.",
            "We really need bulk editing: selecting 50 tasks and changing the due date or status in one go.",
            "It would save us hours if we could edit multiple tasks at the same time.",
            "feature request - bulk edit for tasks (status, assignee, labels)",
            "Could you add the ability to select several tasks and move them to another project together?",
            "When someone leaves we have to reassign 200 tasks one by one. A bulk edit option would be amazing.",
        ],
        [
            "Jira and Asana both have this.",
            "Mostly for status and assignee.",
            "Even a checkbox + 'apply to selected' would do.",
            "We'd pay for it honestly.",
        ],
        ["Is this planned?", "Any plans?", "Thanks!", ""],
        [
            "Thanks for the feedback! Bulk edit isn't available yet, but it's one of the most requested features and I've added your vote.",
            "Right now you can only bulk-move tasks via CSV import. I've logged your request for a proper bulk edit with our product team.",
        ],
        ["CSV import is too fiddly for our PMs.", "Thanks, please keep us posted."],
        ["feature-request", "tasks"],
    ),
    Problem(
        "double_charge_upgrade",
        "billing",
        9,
        "fading",
        ["Charged twice", "Double charge after upgrade", "Two payments on my card", "Billing issue after plan change"],
        [
            "We upgraded from Team to Business yesterday and our card was charged twice.",
            "I see two charges of $240 on our company card after changing the plan.",
            "After the upgrade we were billed for both the old and the new plan.",
            "got charged twice this month, looks like it happened when we upgraded",
        ],
        [
            "Both charges are on the same day.",
            "Our finance team flagged it.",
            "The invoice in the billing page only shows one payment.",
        ],
        ["Please refund the duplicate.", "Can you refund one of them?", "What happened?"],
        [
            "Sorry about that! I can confirm a duplicate charge from the plan change. I've issued a refund for the extra payment; it should appear in 5-10 business days.",
            "Thanks for flagging. The second charge was the prorated amount of the old plan, which should have been credited. I've refunded it.",
        ],
        ["Thanks, refund received.", "Can you send a corrected invoice too?"],
        ["billing", "refund"],
    ),
    Problem(
        "howto_recurring_invoices",
        "how_to",
        12,
        "steady",
        [
            "Recurring invoices",
            "How to set up recurring invoice",
            "Monthly invoice automation",
            "Question about recurring billing for clients",
        ],
        [
            "How do I set up an invoice that goes out automatically every month to a client?",
            "Is it possible to create recurring invoices for our retainer clients? I can't find the option.",
            "Quick question: where do I schedule an invoice to repeat monthly?",
            "how can i make an invoice repeat every month",
            "What's the best way to bill a client the same amount each month without creating the invoice by hand?",
        ],
        [
            "We have about 12 retainer clients.",
            "Ideally on the 1st of each month.",
            "I looked in the help center but couldn't find it.",
        ],
        ["Thanks!", "", "Appreciate any pointers."],
        [
            "Sure! Open the invoice, click the '...' menu and choose 'Make recurring'. You can pick the interval and the first send date. Here's the guide: https://help.tallyboard.io/recurring-invoices",
            "Yes: Invoices > New > Recurring. Set the schedule and Tallyboard will send it on that day each month.",
        ],
        ["Found it, thanks!", "Found it, thanks! Can it also attach the timesheet automatically?"],
        ["invoicing", "how-to"],
    ),
    Problem(
        "complaint_price_increase",
        "complaint",
        8,
        "rising",
        ["Price increase", "Unhappy about new pricing", "Why did our bill go up?", "New pricing is unacceptable"],
        [
            "I'm really disappointed that you raised prices by 40% with two weeks' notice.",
            "Honestly the new pricing is ridiculous for a small team like ours.",
            "We've been loyal customers for four years and this price hike feels like a slap in the face.",
            "This is unacceptable. Our renewal just doubled and nobody told us.",
        ],
        [
            "We're seriously considering switching to another tool.",
            "Features haven't changed, only the price.",
            "We're a non-profit and this hurts.",
        ],
        ["I want to talk to someone about this.", "Very frustrated.", ""],
        [
            "I understand your frustration and I'm sorry the notice felt short. I've shared your feedback with our team and can offer you the previous price until your next renewal.",
            "Thanks for telling us honestly. I've passed this to our customer success lead who will reach out about options for your team.",
        ],
        ["Ok, that helps a bit.", "We'll think about it."],
        ["pricing", "churn-risk"],
    ),
]

NOISE: list[Problem] = [
    Problem(
        "noise",
        "praise",
        8,
        "steady",
        ["Thank you!", "Love the new board view", "Kudos", "Great support"],
        [
            "Just wanted to say the new timeline view is fantastic, thank you!",
            "Huge thanks to Priya for sorting out our migration so quickly. Amazing service.",
            "Love the app, it's made our invoicing so much easier.",
            "Big fan of the latest update, the board is so much faster now.",
            "You guys are great. Our team has been so much more organised since switching.",
        ],
        [""],
        [""],
        [
            "That's so kind, thank you! I'll pass it on to the team.",
            "Thanks a lot for the lovely message, made our day!",
        ],
        [],
        ["feedback"],
    ),
    Problem(
        "noise",
        "how_to",
        9,
        "steady",
        ["Question", "How to add a guest", "Timezone question", "Archive project?", "Change workspace name"],
        [
            "How do I invite a client as a guest so they only see one project?",
            "Where can I change my timezone? Due dates show the wrong day.",
            "how do i archive a project without deleting it",
            "Can I rename our workspace? The old company name is still shown.",
            "How do I add a custom field to tasks?",
            "Is there a keyboard shortcut to create a task?",
            "How can I see who changed a task's due date?",
        ],
        [""],
        ["Thanks", ""],
        [
            "Sure! You'll find it under Settings. Here's a step-by-step guide: https://help.tallyboard.io",
            "Great question: open the project menu and you'll see the option there. Let me know if you get stuck.",
        ],
        ["Found it, thanks!"],
        ["how-to"],
    ),
    Problem(
        "noise",
        "billing",
        4,
        "steady",
        ["Invoice copy", "Change billing email", "VAT ID on our invoice", "Annual plan?"],
        [
            "Could you send me a copy of our invoice from August for our records?",
            "Please change our billing email to finance@{domain}.",
            "Can you add our VAT ID to future invoices from you?",
            "What's the price difference if we switch to annual billing?",
        ],
        [""],
        ["Thanks", ""],
        ["Done! You can also download all invoices from Settings > Billing.", "Sure, I've updated that for you."],
        ["Thanks!"],
        ["billing"],
    ),
    Problem(
        "noise",
        "account_access",
        3,
        "steady",
        ["Transfer ownership", "Remove 2FA", "Change login email"],
        [
            "Our workspace owner left the company. How do I become the owner?",
            "I lost my phone and can't get past two-factor authentication.",
            "I need to change the email I use to log in.",
        ],
        [""],
        ["Please help.", ""],
        [
            "I can help with that. For security I'll need a confirmation from another admin on your account.",
            "I've sent a verification email to the address on file; once confirmed I'll make the change.",
        ],
        ["Confirmed, thanks."],
        ["account"],
    ),
    Problem(
        "noise",
        "other",
        6,
        "steady",
        ["Partnership", "Job application", "Survey", "Out of office", "SEO services"],
        [
            "Hi, we are an agency offering SEO services and would love to partner with you.",
            "Hello, I'd like to apply for the support engineer role I saw on LinkedIn.",
            "I am out of the office until Monday with limited access to email.",
            "We're a reseller in Brazil, do you have a partner program?",
            "Would you participate in a 10 minute survey for our university research project?",
        ],
        [""],
        [""],
        [
            "Thanks for reaching out. I've forwarded this to the right team.",
            "Thanks! Please send this to partners@tallyboard.io.",
        ],
        [],
        ["misc"],
    ),
]

FIRST = [
    "Jane",
    "Marco",
    "Aisha",
    "Tom",
    "Sofia",
    "Liam",
    "Noah",
    "Emma",
    "Lena",
    "Kenji",
    "Fatima",
    "Lucas",
    "Olivia",
    "Mateo",
    "Zoe",
    "Ravi",
    "Hannah",
    "Pieter",
    "Chloe",
    "Daniel",
    "Amara",
    "Jonas",
    "Elif",
    "Sam",
    "Nora",
    "Diego",
    "Ingrid",
    "Yusuf",
    "Mia",
    "Felix",
]
LAST = [
    "Doe",
    "Rossi",
    "Khan",
    "Becker",
    "Martins",
    "O'Brien",
    "Schmidt",
    "Nakamura",
    "Jansen",
    "Dubois",
    "Novak",
    "Garcia",
    "Okafor",
    "Larsen",
    "Silva",
    "Patel",
    "Weber",
    "Moreau",
    "Kowalski",
    "Andersson",
]
COMPANIES = [
    "Acme Builders",
    "Northwind Studio",
    "Bluebird Legal",
    "Kinetic Labs",
    "Harbor & Co",
    "Pixel Forge",
    "Greenfield Consulting",
    "Atlas Freight",
    "Maple Design",
    "Quantum Accounting",
    "Riverbend Media",
    "Summit Architects",
    "Lumen Health",
    "Orbit Events",
    "Copperleaf Agency",
    "Fjord Analytics",
    "Brightside Non-Profit",
    "Vector Engineering",
    "Saffron Foods",
    "Tidewater Ops",
    "Redwood Marketing",
    "Nimbus Software",
    "Granite Property",
    "Willow Clinics",
    "Beacon Logistics",
    "Echo Translations",
    "Solstice Energy",
    "Ironclad Security",
    "Meadow Education",
    "Cobalt Ventures",
    "Parallel Films",
    "Keystone Facilities",
    "Aurora Retail",
    "Pinecrest Schools",
    "Helix Biotech",
    "Sable Interiors",
]
PLANS = ["Free", "Team", "Team", "Business", "Business", "Enterprise"]
ROLES = [
    "Head of Ops",
    "Project Manager",
    "Finance Lead",
    "CTO",
    "Office Manager",
    "Account Director",
    "Operations Coordinator",
    "Founder",
]
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
NOTES = [
    "Escalated to engineering, linked to {ticket}.",
    "Customer is on a renewal call next week, handle with care.",
    "Checked logs: matches the pattern in {ticket}.",
    "Added to {ticket}. Do not close until fix ships.",
    "Refund approved by finance.",
    "Possible churn risk, flagged to CSM.",
]
BOT_GREETINGS = [
    "Hi there 👋 Ask us anything, or share your feedback.",
    "Welcome to Tallyboard support! A human will reply within a few hours.",
    "Hi! Before we connect you: have you checked https://help.tallyboard.io ?",
]

# --- how-to extension ----------------------------------------------------------------------------
# Recurring "how do I ..." questions added after the first 220 conversations. They are generated
# with their own random stream (SEED + EXTENSION_SEED_OFFSET) and ids after the original ones, so the
# original conversations stay byte-identical. Some problems have a help-center article
# (examples/help-center/<slug>.md) that the agent links by URL or by title; for the planted
# "confusing" articles the customer often comes back still unable to do it
# (labels.confusing_article). Problems without an article are the planted documentation gaps.

EXTENSION_SEED_OFFSET = 1  # the extension's random stream: SEED + 1, independent of the original draws
HELP_URL = "https://help.tallyboard.io/"  # article URL = HELP_URL + slug (the help-center file's stem)
LINK_BY_TITLE_SHARE = 0.35  # share of article links written as the article's title instead of its URL

STUCK_AGENT = [
    "Sorry the guide didn't get you there. I'll walk you through it on a call, what time suits you?",
    "Thanks for trying. I've flagged the article to our docs team, it clearly misses a step. Let me check your settings.",
    "Hmm, that should have worked. Could you send me a screenshot of what you see?",
    "I see, that part of the article is out of date after the last release. Let me find the right steps for you.",
]

HOWTOS: list[Problem] = [
    Problem(
        "howto_online_payments",
        "how_to",
        11,
        "steady",
        ["Pay online button", "Card payments on invoices", "How do clients pay by card?", "Stripe setup question"],
        [
            "How do I let clients pay an invoice by card? I'd like a 'Pay now' button on the invoice.",
            "Can our clients pay invoices online? I can't see where to turn that on.",
            "how do i connect stripe so customers can pay invoices directly",
            "Where do I enable online payments for invoices? Our clients keep asking for a payment link.",
            "Is it possible to accept credit card payments through the invoice email?",
        ],
        [
            "We already have a Stripe account.",
            "We're on the Business plan.",
            "Most of our clients are in the US and prefer paying by card.",
            "I'm the workspace admin.",
        ],
        ["Thanks!", "Appreciate any pointers.", "What are the steps?", ""],
        [
            "Sure! You connect Stripe once and every new invoice gets a Pay now button. The steps are in {article}",
            "Yes, that's possible. Have a look at {article}, it explains how to turn on card payments.",
            "Good question! Everything you need is in {article}.",
        ],
        [],
        ["payments", "how-to"],
        article="accept-online-payments",
        article_title="Accept online payments with Stripe",
        stuck=[
            "I followed the article step by step but the Pay now button still doesn't show up on our invoices.",
            "I did everything in that guide and Stripe says connected, but the invoice emails still have no payment link.",
            "The article says to go to Settings > Payments but I don't have that menu. Still can't turn it on.",
            "Went through the guide twice, still no way for clients to pay online. What am I missing?",
        ],
        confusing_share=0.8,
    ),
    Problem(
        "howto_import_trello_asana",
        "how_to",
        10,
        "steady",
        ["Import from Trello", "Moving from Asana", "Migrate our boards", "Import projects"],
        [
            "We're moving from Trello. How do I import our boards into Tallyboard?",
            "How can I bring our projects over from Asana without recreating every task?",
            "is there a way to import our existing Trello boards with the cards and checklists",
            "We'd like to migrate about 30 projects from Asana. What's the best way to import them?",
            "How do I import tasks from another tool? We have everything in Trello today.",
        ],
        [
            "Some boards have a few hundred cards.",
            "We'd like to keep assignees and due dates.",
            "I exported a JSON file from Trello already.",
            "Our trial ends next week so we'd like to move fast.",
        ],
        ["Thanks", "Any tips?", "What's the process?", ""],
        [
            "Welcome aboard! Imports are done from the project list; for Trello and Asana see {article}",
            "Sure, you can import directly. Please follow {article} and let me know how it goes.",
            "Great to have you! The steps for both tools are in {article}.",
        ],
        [],
        ["import", "how-to"],
        article="import-from-trello-asana",
        article_title="Import projects from Trello or Asana",
        stuck=[
            "I followed the import guide but it keeps saying 'unsupported file', I still can't import the board.",
            "Did exactly what the article says, the import finishes but none of the cards show up in the project.",
            "The guide mentions an 'Import' button on the project list, I don't see it anywhere. Still stuck.",
            "Tried the steps in that article again this morning, still nothing imported. Can you help?",
        ],
        confusing_share=0.8,
    ),
    Problem(
        "howto_timesheet_approval",
        "how_to",
        9,
        "steady",
        ["Approving timesheets", "Timesheet approval", "Manager approval for hours", "Lock timesheets"],
        [
            "How do I set it up so a manager has to approve timesheets before hours can be invoiced?",
            "Is there an approval step for timesheets? I want to review hours before the week is locked.",
            "how can project leads approve their team's time entries",
            "Where do I turn on timesheet approvals for our team?",
        ],
        [
            "We have 25 people logging time.",
            "Right now people edit last month's hours after we've billed.",
            "Ideally approvals happen every Friday.",
        ],
        ["Thanks!", "Is that possible?", ""],
        [
            "Yes! Turn on approvals in the workspace settings and choose the approvers. Details in {article}",
            "You can do that with timesheet approvals, see {article} for how it works.",
        ],
        [],
        ["timesheets", "how-to"],
        article="approve-timesheets",
        article_title="Approve and lock timesheets",
    ),
    Problem(
        "howto_invoice_from_hours",
        "how_to",
        9,
        "steady",
        ["Invoice tracked hours", "Bill hours to client", "Create invoice from timesheet", "Hours to invoice"],
        [
            "How do I create an invoice from the hours my team tracked on a project?",
            "Can I turn the billable time entries of last month into an invoice automatically?",
            "what's the easiest way to bill a client for tracked time",
            "Is there a way to pull time entries into an invoice instead of typing every line?",
        ],
        [
            "We bill by the hour with different rates per person.",
            "Only billable entries should go on the invoice.",
            "We do this at the end of every month.",
        ],
        ["Thanks", "Any help appreciated.", ""],
        [
            "Sure: on the invoice, choose 'Add time entries' and pick the period. Full walkthrough in {article}",
            "Yes, invoices can be built from time entries, see {article}.",
        ],
        [],
        ["invoicing", "timesheets", "how-to"],
        article="invoice-tracked-time",
        article_title="Create an invoice from tracked time",
    ),
    Problem(
        "howto_project_templates",
        "how_to",
        9,
        "steady",
        ["Project templates", "Reuse a project", "Template for new clients", "Duplicate project structure"],
        [
            "How do I save a project as a template so new client projects start with the same lists and tasks?",
            "Can I create a project template? We set up the same onboarding tasks for every client.",
            "is there a way to reuse a project's structure for a new project",
            "How do I make new projects start from a standard checklist of tasks?",
        ],
        [
            "Every client gets the same 40 onboarding tasks.",
            "Copying tasks by hand takes an hour each time.",
            "Due dates should shift relative to the start date.",
        ],
        ["Thanks!", "Any ideas?", ""],
        [
            "Absolutely, templates are made for this. How to create one is explained in {article}",
            "Yes, open the project menu and choose 'Save as template'. More in {article}.",
        ],
        [],
        ["projects", "how-to"],
        article="project-templates",
        article_title="Create and use project templates",
    ),
    Problem(
        "howto_slack_notifications",
        "how_to",
        9,
        "steady",
        ["Slack notifications", "Post updates to Slack", "Slack channel alerts", "Slack integration question"],
        [
            "How do I get a message in our Slack channel when a task is completed?",
            "Can Tallyboard post project updates to Slack? I can't find a Slack option anywhere.",
            "how do i send task notifications to a slack channel instead of email",
            "Is there a way to notify a Slack channel when a client pays an invoice?",
        ],
        [
            "We live in Slack and nobody reads the email notifications.",
            "Ideally one channel per project.",
            "I looked at the integrations page but only saw calendars.",
        ],
        ["Thanks!", "Is this possible?", ""],
        [
            "There's no built-in Slack notification yet. Some customers use Zapier with our webhooks to post to Slack in the meantime.",
            "Good question. We don't have a native Slack app today, but webhooks can be forwarded to Slack with a small Zapier zap.",
        ],
        ["How would I set that up with Zapier?", "Ok, we'll try Zapier then.", "Are you planning a Slack app?"],
        ["integrations", "how-to"],
    ),
    Problem(
        "howto_budget_alerts",
        "how_to",
        9,
        "steady",
        ["Project budget alert", "Warn when budget is used", "Budget tracking", "Hours budget"],
        [
            "How do I set a budget on a project and get warned when we've used 80% of it?",
            "Can I set an hours budget per project? I want an alert before we go over.",
            "how do i track project budget vs actual hours",
            "Is there a way to get notified when a fixed-fee project is about to run over budget?",
        ],
        [
            "We have several fixed-price projects.",
            "Last month we overran two projects without noticing.",
            "An email to the project lead would be enough.",
        ],
        ["Thanks", "Any ideas?", ""],
        [
            "There isn't a budget alert in Tallyboard yet. Some teams export hours weekly and compare them to the budget in a spreadsheet.",
            "Budgets aren't a feature today, sorry. I've noted your request; a saved report filtered by project is the closest thing.",
        ],
        ["That's a lot of manual work.", "Is it on the roadmap?", "Ok, thanks for the honest answer."],
        ["projects", "how-to"],
    ),
    Problem(
        "howto_expense_receipts",
        "how_to",
        8,
        "steady",
        ["Expenses on invoice", "Add receipts", "Bill expenses to client", "Expense tracking"],
        [
            "How do I add expenses like travel costs to a client invoice with the receipt attached?",
            "Can team members log expenses with a photo of the receipt and have them billed to the client?",
            "how can i bill a client for materials we bought for their project",
            "Where do I record project expenses so they show up on the invoice?",
        ],
        [
            "Mostly travel and hotel costs.",
            "We'd like a 10% markup on expenses.",
            "Receipts are usually photos from the iPhone app.",
        ],
        ["Thanks!", "Is that supported?", ""],
        [
            "Right now expenses are added as a manual line on the invoice; you can attach the receipt as a PDF to the invoice email.",
            "Good question! You can add a custom line item for each expense. I'll ask the team about receipt uploads.",
        ],
        ["So there's no expense tracking at all?", "Ok, manual lines it is.", "Can the markup be automatic?"],
        ["invoicing", "how-to"],
    ),
    Problem(
        "howto_offline_mobile",
        "how_to",
        8,
        "steady",
        ["Offline mode", "Track time without internet", "Mobile app offline", "Working offline"],
        [
            "Can I track time in the mobile app when I have no signal? Our technicians work in basements.",
            "How do I use the Android app offline? It shows an error when there's no connection.",
            "does the ios app work offline, and do the entries sync later",
            "Is there an offline mode for the app? I'm on flights a lot and want to log hours there.",
        ],
        [
            "Most of our field team uses Android phones.",
            "I'm on an iPhone 14.",
            "The entries need to sync once we're back online.",
        ],
        ["Thanks", "Any way to do this?", ""],
        [
            "The app needs a connection to save entries at the moment. If you start a timer before going offline it keeps running, and it syncs when you reconnect.",
            "Thanks for asking! Offline support is limited today: timers keep running, but new entries need a connection.",
        ],
        [
            "So I can't add entries offline at all?",
            "The running timer trick works, thanks.",
            "Is full offline mode planned?",
        ],
        ["mobile", "how-to"],
    ),
    Problem(
        "howto_invoice_numbering",
        "how_to",
        8,
        "steady",
        ["Invoice number format", "Change invoice numbering", "Invoice prefix", "Start invoices at 1001"],
        [
            "How do I change the invoice number format? Our accountant wants a prefix like INV-2026-.",
            "Can I make invoice numbers continue from our old system? The next one should be 1001.",
            "how do i reset invoice numbering for the new year",
            "Where can I set the starting number for invoices? Tallyboard started at 1 but we're past 500.",
        ],
        [
            "Our accountant requires sequential numbers.",
            "We moved from another invoicing tool this month.",
            "Different prefixes per client would be nice too.",
        ],
        ["Thanks!", "Is that possible?", ""],
        [
            "Invoice numbers follow a sequence per workspace. I've asked the billing team whether the starting number can be changed for your workspace.",
            "Good question. The number format isn't editable in the app yet, but I can set the next number for you if you tell me which one.",
        ],
        ["Please set the next number to 1001.", "A prefix would really help us.", "Ok, thanks."],
        ["invoicing", "how-to"],
    ),
]


def article_reference(problem: Problem, rng: random.Random) -> str:
    """How an agent points to the article: its URL, or its title in quotes (as agents often write)."""
    if rng.random() < LINK_BY_TITLE_SHARE:
        return f'the article "{problem.article_title}"'
    return HELP_URL + problem.article


def howto_conversation(idx: int, problem: Problem, customer: dict, stuck: bool, rng: random.Random) -> dict:
    """One extension conversation: a how-to question, an answer (with the article when there is one),
    then either the customer coming back still unable to do it (``stuck``) or a normal ending."""
    conv = conversation(idx, problem, customer, rng)
    messages = conv["messages"]
    first = customer["name"].split()[0]
    agent = rng.choice(AGENTS)
    linked = bool(problem.article)
    for message in messages:
        if message["author"] == "agent" and "{article}" in message["text"]:
            message["text"] = message["text"].replace("{article}", article_reference(problem, rng))
    if stuck:
        # Replace everything after the first agent answer: the customer returns, still stuck.
        answer_at = next(i for i, m in enumerate(messages) if m["author"] == "agent")
        del messages[answer_at + 1 :]
        clock = datetime.fromisoformat(messages[-1]["created_at"])
        texts = [("customer", rng.choice(problem.stuck))]
        texts.append(
            ("agent", f"Hi {first},\n\n{rng.choice(STUCK_AGENT)}\n\n{rng.choice(AGENT_SIGNOFFS).format(agent=agent)}")
        )
        if rng.random() < 0.4:
            texts.append(("customer", vary(rng.choice([s for s in problem.stuck if s != texts[0][1]]), rng)))
        for author, text in texts:
            clock += timedelta(minutes=rng.randint(30, 2880))
            messages.append(
                {
                    "id": f"msg_{idx}_{len(messages) + 1}",
                    "author": author,
                    "text": text,
                    "created_at": clock.isoformat(),
                }
            )
        conv["updated_at"] = clock.isoformat()
    conv["labels"] = {"problem": problem.key, "type": problem.type}
    if linked:
        conv["labels"]["linked_article"] = problem.article
    if stuck:
        conv["labels"]["confusing_article"] = problem.article
    return conv


def generate_howtos(customers: list[dict], first_index: int, seed: int) -> list[dict]:
    """The how-to extension: its own random stream, ids from ``first_index`` on."""
    rng = random.Random(seed + EXTENSION_SEED_OFFSET)
    weights = [1.0 / (1 + i) ** 0.7 for i in range(len(customers))]
    jobs = [p for p in HOWTOS for _ in range(p.count)]
    rng.shuffle(jobs)
    convs = []
    for offset, problem in enumerate(jobs):
        stuck = bool(problem.article) and rng.random() < problem.confusing_share
        customer = rng.choices(customers, weights=weights)[0]
        convs.append(howto_conversation(first_index + offset, problem, customer, stuck, rng))
    return convs


def make_customers(rng: random.Random) -> list[dict]:
    """Build the customer pool: id, e-mail, name, company, plan and a few attributes."""
    customers = []
    for i in range(CUSTOMER_POOL):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        company = rng.choice(COMPANIES)
        domain = company.lower().replace(" & ", "").replace(" ", "").replace("-", "") + ".com"
        customers.append(
            {
                "id": f"cus_{1000 + i}",
                "email": f"{first.lower()}.{last.lower().replace(chr(39), '')}@{domain}",
                "name": f"{first} {last}",
                "company": company,
                "plan": rng.choice(PLANS),
                "attributes": {
                    "seats": rng.choice([3, 5, 8, 12, 25, 40, 80, 150]),
                    "role": rng.choice(ROLES),
                    "country": rng.choice(["NL", "DE", "US", "GB", "FR", "ES", "BR", "IN"]),
                },
            }
        )
    return customers


def day_offset(rng: random.Random, profile: str) -> float:
    """Days before END for one conversation, drawn from the problem's time profile."""
    u = rng.random()
    if profile == "rising":  # density grows towards the end of the window
        return WINDOW_DAYS * (1 - u**0.5) ** 1.3
    if profile == "fading":  # mirror of rising: density concentrated early in the window
        return WINDOW_DAYS * (1 - (1 - u**0.5) ** 1.3)
    if profile == "burst":  # an incident about 5-7 weeks before END, plus a trickle
        return rng.uniform(35, 48) if u < 0.8 else rng.uniform(0, WINDOW_DAYS)
    return WINDOW_DAYS * u


def html(text: str, rng: random.Random) -> str:
    """Render plain text as an HTML e-mail body (paragraphs, <br>, sometimes a link)."""
    paragraphs = [p.replace("\n", "<br>") for p in text.split("\n\n") if p]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if rng.random() < 0.4:
        body += f'<p>Workspace: <a href="{APP_URL}/w/{rng.randint(1000, 9999)}">{APP_URL}/w/…</a></p>'
    return body


def signature(customer: dict) -> str:
    """An e-mail signature block as mail clients append it."""
    return f"--\n{customer['name']}\n{customer['attributes']['role']} | {customer['company']}"


def quote(previous: str, when: datetime) -> str:
    """A quoted-reply block as Gmail writes it below a reply."""
    stamp = f"{WEEKDAYS[when.weekday()]}, {when.day} {MONTHS[when.month - 1]} {when.year} at {when:%H:%M}"
    quoted = "\n".join("> " + line for line in previous.split("\n"))
    return f"On {stamp}, Tallyboard Support <{SUPPORT_ADDRESS}> wrote:\n{quoted}"


def vary(sentence: str, rng: random.Random) -> str:
    """Small casual-writing variation: sometimes lower-case the first letter."""
    if sentence and rng.random() < 0.12:
        sentence = sentence[0].lower() + sentence[1:]
    return sentence


def first_message(problem: Problem, customer: dict, rng: random.Random) -> str:
    """Compose the opening customer message from greeting, symptom, details, ask, closing."""
    parts = [vary(rng.choice(problem.symptoms), rng)]
    for detail in rng.sample(problem.details, k=min(len(problem.details), rng.choice([0, 1, 1, 2]))):
        if detail:
            parts.append(detail)
    ask = rng.choice(problem.asks)
    if ask and rng.random() < 0.8:
        parts.append(ask)
    body = " ".join(parts).replace("{domain}", customer["email"].split("@")[1])
    if body.endswith(".") and rng.random() < 0.1:  # casual writers drop the final period
        body = body[:-1]
    greeting, closing = rng.choice(GREETINGS), rng.choice(CLOSINGS)
    text = "\n\n".join(p for p in (greeting, body, closing) if p)
    if rng.random() < SIGNATURE_SHARE:
        text += "\n\n" + signature(customer)
    return text


def agent_message(problem: Problem, customer: dict, agent: str, rng: random.Random, followup: bool = False) -> str:
    """Compose an agent reply: greeting, a topic answer (or a follow-up line), sign-off."""
    first = customer["name"].split()[0]
    answer = rng.choice(AGENT_FOLLOWUPS) if followup else rng.choice(problem.agent)
    return "\n\n".join(
        [rng.choice(AGENT_GREETINGS).format(first=first), answer, rng.choice(AGENT_SIGNOFFS).format(agent=agent)]
    )


def conversation(idx: int, problem: Problem, customer: dict, rng: random.Random) -> dict:
    """Build one conversation dict (2-8 messages) in the shared JSONL format."""
    start = END - timedelta(days=day_offset(rng, problem.profile), hours=rng.uniform(0, 10), minutes=rng.randint(0, 59))
    start = start.replace(second=rng.randint(0, 59), microsecond=0)
    agent = rng.choice(AGENTS)
    ticket = f"TB-{rng.randint(1200, 1999)}"
    clock = start
    messages: list[dict] = []

    def add(author: str, text: str, gap_minutes: tuple[int, int]) -> None:
        nonlocal clock
        clock = clock + timedelta(minutes=rng.randint(*gap_minutes))
        if author in ("customer", "agent") and rng.random() < HTML_SHARE:
            text = html(text, rng)
        messages.append(
            {"id": f"msg_{idx}_{len(messages) + 1}", "author": author, "text": text, "created_at": clock.isoformat()}
        )

    if rng.random() < BOT_SHARE:
        add("bot", rng.choice(BOT_GREETINGS), (0, 0))
    add("customer", first_message(problem, customer, rng), (0, 1))
    add("agent", agent_message(problem, customer, agent, rng), (8, 600))
    last_agent, last_agent_at = messages[-1]["text"], clock
    if rng.random() < NOTE_SHARE:
        add("note", rng.choice(NOTES).format(ticket=ticket), (1, 30))
    rounds = rng.choice([0, 1, 1, 2]) if problem.followups else 0
    for _ in range(rounds):
        if len(messages) >= 7:
            break
        reply = vary(rng.choice(problem.followups), rng)
        if rng.random() < QUOTED_SHARE:
            reply += "\n\n" + quote(last_agent, last_agent_at)
        add("customer", reply, (30, 2880))
        add("agent", agent_message(problem, customer, agent, rng, followup=True), (10, 900))
        last_agent, last_agent_at = messages[-1]["text"], clock
    if len(messages) < 8 and rng.random() < 0.4:
        add("customer", rng.choice(CLOSE_CUSTOMER), (5, 1440))
        if len(messages) < 8 and rng.random() < 0.5:
            add("agent", rng.choice(CLOSE_AGENT), (2, 120))
    state = rng.choices(["closed", "open", "snoozed"], weights=[7, 2, 1])[0]
    conv_id = f"tb-{idx:04d}"
    return {
        "id": conv_id,
        "created_at": start.isoformat(),
        "updated_at": clock.isoformat(),
        "subject": rng.choice(problem.subjects),
        "state": state,
        "url": INBOX_URL + conv_id,
        "tags": sorted(set(rng.sample(problem.tags, k=min(len(problem.tags), rng.randint(0, 2))))),
        "customer": customer,
        "messages": messages,
        "labels": {"problem": problem.key, "type": problem.type},
    }


def generate(seed: int = SEED) -> list[dict]:
    """All conversations, sorted by creation time, with stable ids."""
    rng = random.Random(seed)
    customers = make_customers(rng)
    weights = [1.0 / (1 + i) ** 0.7 for i in range(len(customers))]  # a few customers write often
    jobs = [p for p in PROBLEMS + NOISE for _ in range(p.count)]
    rng.shuffle(jobs)
    convs = [conversation(i + 1, p, rng.choices(customers, weights=weights)[0], rng) for i, p in enumerate(jobs)]
    convs += generate_howtos(customers, len(convs) + 1, seed)
    convs.sort(key=lambda c: c["created_at"])
    return convs


def main() -> None:
    """CLI entry point: write the sample to --out (default examples/conversations.jsonl)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DEFAULT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    with args.out.open("w", encoding="utf-8") as fh:
        for conv in generate(args.seed):
            fh.write(json.dumps(conv, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
