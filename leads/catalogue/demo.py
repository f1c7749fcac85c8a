"""The demo catalogue behind `flask --app wsgi seed-demo` (CONTRACT §1): treatments, partner
clinics in twelve countries with their prices and accreditations, currency rates and one admin.

Every clinic, e-mail address, phone number and certificate reference below is made up; prices and
rates are plausible, not quotes. Dates are relative to the day the catalogue is loaded, so the
accreditations that are meant to be current stay current. Loading is idempotent: whatever is
missing is added and nothing that exists is changed, so a second run changes no row.
"""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select

from leads.accounts.models import User
from leads.accounts.operations import issue_staff_token
from leads.catalogue.models import Accreditation, Clinic, ClinicTreatment, CurrencyRate, Treatment
from leads.core.clock import today
from leads.core.database import db

ADMIN_EMAIL = "admin@demo.local"

# slug, name, specialty
TREATMENTS = (
    ("stem-cell-spine-arthritis", "Stem cell therapy for spine arthritis", "regenerative-medicine"),
    ("stem-cell-knee-osteoarthritis", "Stem cell therapy for knee osteoarthritis",
     "regenerative-medicine"),
    ("prp-joint-injections", "Platelet-rich plasma (PRP) joint injections",
     "regenerative-medicine"),
    ("dental-implants", "Dental implants", "dentistry"),
    ("all-on-4-dental-implants", "All-on-4 full-arch dental implants", "dentistry"),
    ("porcelain-veneers", "Porcelain veneers", "dentistry"),
    ("total-hip-replacement", "Total hip replacement", "orthopedics"),
    ("total-knee-replacement", "Total knee replacement", "orthopedics"),
    ("coronary-artery-bypass", "Coronary artery bypass grafting (CABG)", "cardiology"),
    ("heart-valve-replacement", "Heart valve replacement", "cardiology"),
    ("gastric-sleeve", "Gastric sleeve (sleeve gastrectomy)", "bariatric-surgery"),
    ("gastric-bypass", "Roux-en-Y gastric bypass", "bariatric-surgery"),
    ("ivf-cycle", "IVF cycle", "fertility"),
    ("egg-freezing", "Egg freezing (oocyte cryopreservation)", "fertility"),
    ("lasik", "LASIK eye surgery (both eyes)", "ophthalmology"),
    ("cataract-surgery", "Cataract surgery with lens implant", "ophthalmology"),
    ("fue-hair-restoration", "FUE hair restoration", "cosmetic"),
    ("rhinoplasty", "Rhinoplasty", "cosmetic"),
)

# currency, US dollars per unit (rounded demo figures; admins update them over the API)
RATES = (
    ("USD", "1"), ("EUR", "1.10"), ("MXN", "0.054"), ("COP", "0.00025"), ("CRC", "0.00198"),
    ("TRY", "0.025"), ("THB", "0.030"), ("INR", "0.0117"), ("HUF", "0.0029"),
    ("KRW", "0.00071"), ("PLN", "0.27"),
)
RATE_NOTE = "Demo rate, rounded; not for quoting."

# Each clinic: `domain` gives its e-mail (referrals@DOMAIN.clinic.example) and website;
# offers are (treatment slug, price from, price to, currency);
# accreditations are (body, certificate reference, issued days ago, expires in days, verified) —
# a negative "expires in" has lapsed.
CLINICS = (
    # Mexico
    {"name": "Clínica Regenerativa del Pacífico", "city": "Tijuana", "country": "MX",
     "domain": "regenerativa-pacifico", "phone": "+526646340211", "languages": "es en", "cap": 60,
     "offers": (("stem-cell-spine-arthritis", 9_500, 14_000, "USD"),
                ("stem-cell-knee-osteoarthritis", 6_500, 9_500, "USD"),
                ("prp-joint-injections", 900, 1_800, "USD")),
     "accreditations": (("AACI", "AACI-MX-2291", 400, 330, True),
                        ("GMP", "COFEPRIS-GMP-0457/2023", 610, 120, True),
                        ("ISO 9001", "MX-QMS-55102", 1_140, -45, True))},
    {"name": "Instituto de Medicina Celular Guadalajara", "city": "Guadalajara", "country": "MX",
     "domain": "imc-guadalajara", "phone": "+523336151234", "languages": "es en", "cap": 40,
     "offers": (("stem-cell-spine-arthritis", 165_000, 240_000, "MXN"),
                ("stem-cell-knee-osteoarthritis", 110_000, 160_000, "MXN"),
                ("prp-joint-injections", 15_000, 30_000, "MXN")),
     "accreditations": (("GMP", "COFEPRIS-GMP-0912/2024", 300, 430, True),
                        ("ISO 9001", "MX-QMS-61877", 520, 575, True))},
    {"name": "Centro Médico Baja Vida", "city": "Tijuana", "country": "MX",
     "domain": "bajavida", "phone": "+526646081234", "languages": "es en", "cap": 80,
     "offers": (("stem-cell-spine-arthritis", 8_000, 12_500, "USD"),
                ("gastric-sleeve", 4_200, 5_900, "USD"),
                ("gastric-bypass", 5_800, 8_200, "USD"),
                ("total-hip-replacement", 12_000, 16_500, "USD")),
     "accreditations": (("JCI", "JCI-MX-0118", 700, 395, True),
                        ("AACI", "AACI-MX-3105", 12, 1_083, False))},
    {"name": "Cancún Dental Studio", "city": "Cancún", "country": "MX",
     "domain": "cancun-dental", "phone": "+529988871234", "languages": "es en fr", "cap": 50,
     "offers": (("dental-implants", 1_100, 1_900, "USD"),
                ("all-on-4-dental-implants", 9_500, 13_500, "USD"),
                ("porcelain-veneers", 380, 650, "USD")),
     "accreditations": (("ISO 9001", "MX-QMS-70214", 210, 885, True),)},
    {"name": "Hospital Sierra Madre", "city": "Monterrey", "country": "MX",
     "domain": "sierramadre-mty", "phone": "+528183561234", "languages": "es en", "cap": 70,
     "offers": (("stem-cell-spine-arthritis", 190_000, 260_000, "MXN"),
                ("total-hip-replacement", 210_000, 300_000, "MXN"),
                ("total-knee-replacement", 200_000, 290_000, "MXN"),
                ("coronary-artery-bypass", 380_000, 520_000, "MXN")),
     "accreditations": (("JCI", "JCI-MX-0342", 820, 275, True),
                        ("ISO 9001", "MX-QMS-48330", 400, 695, True))},
    {"name": "Fertilidad Integral", "city": "Ciudad de México", "country": "MX",
     "domain": "fertilidad-integral", "phone": "+525552801234", "languages": "es en", "cap": 35,
     "offers": (("ivf-cycle", 85_000, 130_000, "MXN"),
                ("egg-freezing", 55_000, 80_000, "MXN")),
     "accreditations": (("ISO 9001", "MX-QMS-66120", 150, 945, True),
                        ("ISO 15189", "EMA-LC-1187", 20, 1_075, False))},
    {"name": "Clínica Vallarta Regenerativa", "city": "Puerto Vallarta", "country": "MX",
     "domain": "vallarta-regenerativa", "phone": "+523222241234", "languages": "es en",
     "cap": 30,
     "offers": (("stem-cell-spine-arthritis", 10_500, 16_000, "USD"),
                ("stem-cell-knee-osteoarthritis", 7_000, 10_000, "USD")),
     "accreditations": (("AACI", "AACI-MX-2760", 250, 480, True),
                        ("GMP", "COFEPRIS-GMP-0301/2021", 1_300, -160, True))},
    # Panama
    {"name": "Panama Regenerative Institute", "city": "Panama City", "country": "PA",
     "domain": "pri-panama", "phone": "+5072641234", "languages": "en es", "cap": 45,
     "offers": (("stem-cell-spine-arthritis", 14_000, 24_000, "USD"),
                ("stem-cell-knee-osteoarthritis", 9_000, 15_000, "USD")),
     "accreditations": (("GMP", "MINSA-GMP-PA-0077", 380, 350, True),
                        ("ISO 9001", "PA-QMS-10455", 600, 495, True))},
    {"name": "Centro de Terapia Celular Punta Pacífica", "city": "Panama City", "country": "PA",
     "domain": "ctc-puntapacifica", "phone": "+5073061234", "languages": "es en", "cap": 30,
     "offers": (("stem-cell-spine-arthritis", 12_500, 20_000, "USD"),
                ("prp-joint-injections", 1_200, 2_500, "USD")),
     "accreditations": (("AACI", "AACI-PA-0931", 180, 550, True),
                        ("GDP", "MINSA-GDP-PA-0212", 25, 705, False))},
    {"name": "Hospital Istmo Internacional", "city": "Panama City", "country": "PA",
     "domain": "istmo-internacional", "phone": "+5072941234", "languages": "es en", "cap": 60,
     "offers": (("stem-cell-spine-arthritis", 13_000, 19_000, "USD"),
                ("coronary-artery-bypass", 28_000, 38_000, "USD"),
                ("total-hip-replacement", 16_000, 21_000, "USD"),
                ("total-knee-replacement", 15_000, 20_000, "USD"),
                ("gastric-sleeve", 7_500, 9_800, "USD")),
     "accreditations": (("JCI", "JCI-PA-0024", 500, 595, True),)},
    {"name": "Chiriquí Spine & Joint Center", "city": "David", "country": "PA",
     "domain": "chiriqui-spine", "phone": "+5077751234", "languages": "es en", "cap": 20,
     "offers": (("stem-cell-spine-arthritis", 11_000, 17_000, "USD"),
                ("prp-joint-injections", 900, 1_600, "USD")),
     "accreditations": (("ISO 9001", "PA-QMS-09871", 1_105, -10, True),)},
    # Colombia
    {"name": "Clínica Regenerar", "city": "Medellín", "country": "CO",
     "domain": "regenerar-medellin", "phone": "+576043221234", "languages": "es en", "cap": 40,
     "offers": (("stem-cell-spine-arthritis", 38_000_000, 56_000_000, "COP"),
                ("stem-cell-knee-osteoarthritis", 24_000_000, 36_000_000, "COP"),
                ("prp-joint-injections", 3_500_000, 6_000_000, "COP")),
     "accreditations": (("ISO 9001", "CO-SC-7741-1", 330, 765, True),
                        ("GMP", "INVIMA-BPM-2023-0098", 420, 310, True))},
    {"name": "Centro de Fertilidad Andino", "city": "Bogotá", "country": "CO",
     "domain": "fertilidad-andino", "phone": "+576017451234", "languages": "es en", "cap": 30,
     "offers": (("ivf-cycle", 20_000_000, 30_000_000, "COP"),
                ("egg-freezing", 11_000_000, 16_000_000, "COP")),
     "accreditations": (("ISO 9001", "CO-SC-8120-1", 90, 1_005, True),)},
    {"name": "Clínica Estética del Valle", "city": "Cali", "country": "CO",
     "domain": "estetica-valle", "phone": "+576024851234", "languages": "es en", "cap": 35,
     "offers": (("rhinoplasty", 11_000_000, 17_000_000, "COP"),
                ("gastric-sleeve", 19_000_000, 27_000_000, "COP"),
                ("dental-implants", 4_000_000, 6_500_000, "COP"),
                ("porcelain-veneers", 1_200_000, 2_000_000, "COP")),
     "accreditations": (("AACI", "AACI-CO-1410", 270, 460, True),
                        ("Temos", "TEMOS-CO-0388", 30, 1_065, False))},
    # Costa Rica
    {"name": "San José Dental Center", "city": "Escazú", "country": "CR",
     "domain": "sjdental", "phone": "+50622881234", "languages": "es en", "cap": 50,
     "offers": (("dental-implants", 1_150, 1_750, "USD"),
                ("all-on-4-dental-implants", 10_500, 15_000, "USD"),
                ("porcelain-veneers", 450, 750, "USD")),
     "accreditations": (("AACI", "AACI-CR-0642", 360, 370, True),
                        ("ISO 9001", "CR-INTECO-5521", 700, 395, True))},
    {"name": "Clínica Montecielo", "city": "San José", "country": "CR",
     "domain": "montecielo", "phone": "+50622571234", "languages": "es en", "cap": 45,
     "offers": (("stem-cell-spine-arthritis", 10_000, 15_000, "USD"),
                ("stem-cell-knee-osteoarthritis", 8_500, 12_000, "USD"),
                ("total-hip-replacement", 13_000, 17_500, "USD"),
                ("total-knee-replacement", 12_500, 16_500, "USD")),
     "accreditations": (("JCI", "JCI-CR-0051", 450, 645, True),)},
    {"name": "Guanacaste Wellness & Surgery", "city": "Liberia", "country": "CR",
     "domain": "guanacaste-wellness", "phone": "+50626661234", "languages": "en es", "cap": 25,
     "active": False,
     "offers": (("gastric-sleeve", 4_900_000, 6_400_000, "CRC"),
                ("lasik", 900_000, 1_300_000, "CRC")),
     "accreditations": (("Temos", "TEMOS-CR-0119", 520, 210, True),)},
    # Türkiye
    {"name": "Bosphorus Dental Clinic", "city": "Istanbul", "country": "TR",
     "domain": "bosphorus-dental", "phone": "+902122271234", "languages": "tr en de ar",
     "cap": 100,
     "offers": (("dental-implants", 17_000, 28_000, "TRY"),
                ("all-on-4-dental-implants", 175_000, 260_000, "TRY"),
                ("porcelain-veneers", 6_500, 11_000, "TRY")),
     "accreditations": (("ISO 9001", "TR-TSE-33781", 240, 855, True),
                        ("Temos", "TEMOS-TR-0702", 390, 340, True))},
    {"name": "Kadıköy Hair Clinic", "city": "Istanbul", "country": "TR",
     "domain": "kadikoy-hair", "phone": "+902163451234", "languages": "tr en ar", "cap": 120,
     "offers": (("fue-hair-restoration", 65_000, 110_000, "TRY"),
                ("rhinoplasty", 120_000, 190_000, "TRY")),
     "accreditations": (("ISO 9001", "TR-TSE-40215", 160, 935, True),
                        ("Temos", "TEMOS-TR-0455", 1_120, -25, True))},
    {"name": "Ege Bariatric Center", "city": "İzmir", "country": "TR",
     "domain": "ege-bariatric", "phone": "+902324641234", "languages": "tr en de", "cap": 70,
     "offers": (("gastric-sleeve", 105_000, 160_000, "TRY"),
                ("gastric-bypass", 130_000, 195_000, "TRY")),
     "accreditations": (("Temos", "TEMOS-TR-0811", 200, 530, True),
                        ("ISO 9001", "TR-TSE-51190", 8, 1_087, False))},
    {"name": "Lara Eye Hospital", "city": "Antalya", "country": "TR",
     "domain": "lara-eye", "phone": "+902423231234", "languages": "tr en ru de", "cap": 60,
     "offers": (("lasik", 28_000, 48_000, "TRY"),
                ("cataract-surgery", 45_000, 80_000, "TRY")),
     "accreditations": (("JCI", "JCI-TR-0167", 610, 485, True),)},
    {"name": "Marmara Heart & Orthopaedic Hospital", "city": "Istanbul", "country": "TR",
     "domain": "marmara-heart", "phone": "+902165701234", "languages": "tr en ar ru", "cap": 50,
     "offers": (("coronary-artery-bypass", 380_000, 620_000, "TRY"),
                ("heart-valve-replacement", 450_000, 750_000, "TRY"),
                ("total-hip-replacement", 260_000, 380_000, "TRY"),
                ("total-knee-replacement", 240_000, 360_000, "TRY")),
     "accreditations": (("JCI", "JCI-TR-0093", 900, 195, True),
                        ("ISO 9001", "TR-TSE-29904", 300, 795, True))},
    # Thailand
    {"name": "Sukhumvit International Hospital", "city": "Bangkok", "country": "TH",
     "domain": "sukhumvit-intl", "phone": "+6620661000", "languages": "th en ja ar", "cap": 90,
     "offers": (("coronary-artery-bypass", 950_000, 1_450_000, "THB"),
                ("heart-valve-replacement", 1_100_000, 1_700_000, "THB"),
                ("total-hip-replacement", 480_000, 680_000, "THB"),
                ("total-knee-replacement", 450_000, 650_000, "THB"),
                ("lasik", 65_000, 95_000, "THB")),
     "accreditations": (("JCI", "JCI-TH-0039", 650, 445, True),
                        ("ISO 15189", "DMSc-LA-2207", 410, 685, True))},
    {"name": "Phuket Smile Dental", "city": "Phuket", "country": "TH",
     "domain": "phuket-smile", "phone": "+6676361234", "languages": "th en ru", "cap": 40,
     "offers": (("dental-implants", 48_000, 78_000, "THB"),
                ("all-on-4-dental-implants", 420_000, 600_000, "THB"),
                ("porcelain-veneers", 12_000, 20_000, "THB")),
     "accreditations": (("ISO 9001", "TH-TISI-8841", 190, 905, True),)},
    {"name": "Chiang Mai Fertility Centre", "city": "Chiang Mai", "country": "TH",
     "domain": "cm-fertility", "phone": "+6653201234", "languages": "th en zh", "cap": 30,
     "offers": (("ivf-cycle", 190_000, 290_000, "THB"),
                ("egg-freezing", 110_000, 160_000, "THB")),
     "accreditations": (("ISO 15189", "DMSc-LA-3015", 280, 815, True),
                        ("ISO 9001", "TH-TISI-9902", 15, 1_080, False))},
    # Germany
    {"name": "Orthopädische Klinik am Englischen Garten", "city": "München", "country": "DE",
     "domain": "ortho-englischergarten", "phone": "+498938561234", "languages": "de en ru ar",
     "cap": 40,
     "offers": (("total-hip-replacement", 14_000, 21_000, "EUR"),
                ("total-knee-replacement", 13_500, 20_000, "EUR"),
                ("stem-cell-knee-osteoarthritis", 6_500, 9_500, "EUR"),
                ("prp-joint-injections", 600, 1_200, "EUR")),
     "accreditations": (("ISO 9001", "DE-DQS-502114", 430, 665, True),
                        ("GMP", "DE-BY-GMP-2023-117", 560, 170, True))},
    {"name": "Herzzentrum Rhein-Ruhr", "city": "Düsseldorf", "country": "DE",
     "domain": "herzzentrum-rr", "phone": "+492115589123", "languages": "de en ar", "cap": 25,
     "offers": (("coronary-artery-bypass", 26_000, 39_000, "EUR"),
                ("heart-valve-replacement", 29_000, 45_000, "EUR")),
     "accreditations": (("JCI", "JCI-DE-0012", 780, 315, True),
                        ("ISO 9001", "DE-DQS-388020", 1_160, -70, True))},
    {"name": "Augenzentrum Berlin-Mitte", "city": "Berlin", "country": "DE",
     "domain": "augenzentrum-mitte", "phone": "+493028091234", "languages": "de en tr",
     "cap": 30,
     "offers": (("lasik", 1_900, 2_900, "EUR"),
                ("cataract-surgery", 1_600, 3_200, "EUR")),
     "accreditations": (("ISO 9001", "DE-TUV-710455", 260, 835, True),)},
    # Spain
    {"name": "Institut de Fertilitat Diagonal", "city": "Barcelona", "country": "ES",
     "domain": "fertilitat-diagonal", "phone": "+34932541234", "languages": "es ca en fr it",
     "cap": 50,
     "offers": (("ivf-cycle", 5_200, 8_200, "EUR"),
                ("egg-freezing", 2_800, 4_200, "EUR")),
     "accreditations": (("ISO 9001", "ES-AENOR-ER-1142", 350, 745, True),
                        ("JCI", "JCI-ES-0031", 40, 1_055, False))},
    {"name": "Clínica Dental Costa Blanca", "city": "Alicante", "country": "ES",
     "domain": "dental-costablanca", "phone": "+34965141234", "languages": "es en de nl",
     "cap": 45,
     "offers": (("dental-implants", 950, 1_500, "EUR"),
                ("all-on-4-dental-implants", 8_500, 12_500, "EUR"),
                ("porcelain-veneers", 350, 600, "EUR")),
     "accreditations": (("ISO 9001", "ES-AENOR-ER-2290", 120, 975, True),)},
    # India
    {"name": "Coromandel Heart Institute", "city": "Chennai", "country": "IN",
     "domain": "coromandel-heart", "phone": "+914428291234", "languages": "en ta hi ar",
     "cap": 80,
     "offers": (("coronary-artery-bypass", 420_000, 650_000, "INR"),
                ("heart-valve-replacement", 550_000, 900_000, "INR")),
     "accreditations": (("JCI", "JCI-IN-0208", 560, 535, True),
                        ("ISO 9001", "IN-BIS-QMS-60518", 220, 875, True))},
    {"name": "Deccan Joint Replacement Centre", "city": "Hyderabad", "country": "IN",
     "domain": "deccan-joint", "phone": "+914023551234", "languages": "en te hi ar", "cap": 70,
     "offers": (("total-hip-replacement", 360_000, 550_000, "INR"),
                ("total-knee-replacement", 330_000, 500_000, "INR"),
                ("stem-cell-knee-osteoarthritis", 180_000, 300_000, "INR")),
     "accreditations": (("JCI", "JCI-IN-0277", 340, 755, True),)},
    {"name": "Sahyadri Eye & Fertility Hospital", "city": "Pune", "country": "IN",
     "domain": "sahyadri-eye", "phone": "+912026051234", "languages": "en mr hi", "cap": 50,
     "offers": (("lasik", 65_000, 110_000, "INR"),
                ("cataract-surgery", 30_000, 85_000, "INR"),
                ("ivf-cycle", 150_000, 250_000, "INR")),
     "accreditations": (("ISO 9001", "IN-BIS-QMS-71122", 410, 685, True),
                        ("ISO 15189", "NABL-MC-4410", 10, 720, False))},
    # Hungary
    {"name": "Budai Dental Centrum", "city": "Budapest", "country": "HU",
     "domain": "budai-dental", "phone": "+3613561234", "languages": "hu en de", "cap": 60,
     "offers": (("dental-implants", 240_000, 380_000, "HUF"),
                ("all-on-4-dental-implants", 2_400_000, 3_400_000, "HUF"),
                ("porcelain-veneers", 95_000, 160_000, "HUF")),
     "accreditations": (("ISO 9001", "HU-SGS-20871", 300, 795, True),
                        ("Temos", "TEMOS-HU-0240", 450, 280, True))},
    {"name": "Soproni Fogászati Klinika", "city": "Sopron", "country": "HU",
     "domain": "sopron-dental", "phone": "+3699512345", "languages": "hu de en", "cap": 40,
     "offers": (("dental-implants", 220_000, 350_000, "HUF"),
                ("porcelain-veneers", 85_000, 140_000, "HUF")),
     "accreditations": (("ISO 9001", "HU-SGS-18834", 500, 595, True),
                        ("Temos", "TEMOS-HU-0107", 1_130, -90, True))},
    # South Korea
    {"name": "Gangnam Seoul Plastic & Eye Clinic", "city": "Seoul", "country": "KR",
     "domain": "gangnam-seoul", "phone": "+8225461234", "languages": "ko en zh ja", "cap": 50,
     "offers": (("rhinoplasty", 5_500_000, 9_000_000, "KRW"),
                ("lasik", 2_400_000, 3_800_000, "KRW")),
     "accreditations": (("ISO 9001", "KR-KFQ-40917", 180, 915, True),
                        ("JCI", "JCI-KR-0058", 35, 1_060, False))},
    # Poland
    {"name": "Warszawska Klinika Ortopedyczna", "city": "Warszawa", "country": "PL",
     "domain": "wko-warszawa", "phone": "+48225891234", "languages": "pl en de", "cap": 30,
     "offers": (("total-hip-replacement", 32_000, 46_000, "PLN"),
                ("total-knee-replacement", 30_000, 44_000, "PLN")),
     "accreditations": (("ISO 9001", "PL-PCBC-11408", 270, 825, True),)},
)


def seed_demo() -> str | None:
    """Add whatever part of the demo catalogue is missing; the caller commits.
    Returns the admin's new token when this run created the admin, else None."""
    admin, token = _admin()
    treatments = _treatments()
    for currency, usd_per_unit in RATES:
        if db.session.get(CurrencyRate, currency) is None:
            db.session.add(CurrencyRate(currency=currency, usd_per_unit=Decimal(usd_per_unit),
                                        note=RATE_NOTE))
    for row in CLINICS:
        _clinic(row, treatments, admin)
    return token


def _admin() -> tuple[User, str | None]:
    admin = db.session.scalar(select(User).where(User.email == ADMIN_EMAIL))
    if admin is not None:
        return admin, None
    admin = User(email=ADMIN_EMAIL, role="admin")
    db.session.add(admin)
    token = issue_staff_token(admin)
    db.session.flush()  # verified accreditations name the admin by id
    return admin, token


def _treatments() -> dict[str, Treatment]:
    slugs = [slug for slug, _, _ in TREATMENTS]
    found = {treatment.slug: treatment for treatment in db.session.scalars(
        select(Treatment).where(Treatment.slug.in_(slugs)))}
    for slug, name, specialty in TREATMENTS:
        if slug not in found:
            found[slug] = Treatment(slug=slug, name=name, specialty=specialty)
            db.session.add(found[slug])
    return found


def _clinic(row: dict, treatments: dict[str, Treatment], admin: User) -> None:
    """The clinic of `row`, with any of its offers and accreditations that are missing."""
    clinic = db.session.scalar(
        select(Clinic).where(Clinic.name == row["name"], Clinic.country == row["country"]))
    if clinic is None:
        clinic = Clinic(
            name=row["name"], city=row["city"], country=row["country"],
            email=f"referrals@{row['domain']}.clinic.example", phone=row["phone"],
            website=f"https://www.{row['domain']}.clinic.example/",
            languages=row["languages"].split(), active=row.get("active", True),
            monthly_referral_cap=row["cap"])
        db.session.add(clinic)
    offered = {offer.treatment.slug for offer in clinic.offers}
    for slug, low, high, currency in row["offers"]:
        if slug not in offered:
            clinic.offers.append(ClinicTreatment(treatment=treatments[slug], price_min=Decimal(low),
                                                 price_max=Decimal(high), currency=currency))
    held = {(a.body, a.reference) for a in clinic.accreditations}
    seeded_on = today()
    for body, reference, issued_days_ago, expires_in_days, verified in row["accreditations"]:
        if (body, reference) in held:
            continue
        valid_from = seeded_on - timedelta(days=issued_days_ago)
        clinic.accreditations.append(Accreditation(
            body=body, reference=reference, valid_from=valid_from,
            valid_until=seeded_on + timedelta(days=expires_in_days), verified=verified,
            verified_by_id=admin.id if verified else None,
            # checked a week after issue, in the morning (UTC)
            verified_at=(datetime.combine(valid_from + timedelta(days=7), time(9), tzinfo=UTC)
                         if verified else None)))
