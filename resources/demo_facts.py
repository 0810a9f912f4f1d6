"""Facts and phrase lists the demo datasets are composed from.

The demo datasets (see ``build_demo.py``) are a travel-tips assistant. Every row is
composed from the tables below, so the text varies but stays consistent: the currency
of a city is the same in every answer, which lets evaluation ask short factual
questions with one right answer.
"""

from __future__ import annotations

# name, country, currency, language, best time, dish, transport, landmark, tipping, area
CITIES = [
    ("Lisbon", "Portugal", "euro", "Portuguese", "spring and early autumn",
     "pastel de nata", "the old trams and the metro, paid with a Viva Viagem card",
     "Belém Tower", "rounding up the bill is enough", "Alfama"),
    ("Kyoto", "Japan", "yen", "Japanese", "late March to early April and November",
     "yudofu, a simple tofu hot pot", "city buses and the subway, paid with an IC card",
     "Fushimi Inari Shrine", "tipping is not expected", "Gion"),
    ("Mexico City", "Mexico", "peso", "Spanish", "March to May, before the rains",
     "tacos al pastor", "the Metro and ride-hailing apps", "the Zócalo",
     "about ten to fifteen percent in restaurants", "Roma Norte"),
    ("Marrakech", "Morocco", "dirham", "Arabic", "March to May and October to November",
     "a slow-cooked tagine", "petit taxis, with the fare agreed before you ride",
     "Jemaa el-Fnaa square", "small tips for guides and porters are common", "the medina"),
    ("Reykjavik", "Iceland", "krona", "Icelandic", "June to August for roads, winter for northern lights",
     "Icelandic lamb soup", "city buses and a rental car for day trips", "Hallgrímskirkja",
     "tipping is not expected", "the old harbour"),
    ("Hanoi", "Vietnam", "dong", "Vietnamese", "October to December and March to April",
     "pho", "walking and motorbike taxis booked in an app", "Hoan Kiem Lake",
     "small tips are welcome but not required", "the Old Quarter"),
    ("Buenos Aires", "Argentina", "peso", "Spanish", "September to November",
     "empanadas and a long Sunday asado", "the Subte, paid with a SUBE card",
     "the Recoleta Cemetery", "about ten percent in restaurants", "San Telmo"),
    ("Istanbul", "Turkey", "lira", "Turkish", "April to June and September to October",
     "simit from a street cart", "trams, ferries and the metro, paid with an Istanbulkart",
     "Hagia Sophia", "around ten percent in restaurants", "Kadıköy"),
    ("Edinburgh", "Scotland", "pound", "English", "May to September",
     "haggis with neeps and tatties", "walking and the Lothian buses", "Edinburgh Castle",
     "about ten percent when service is not included", "the Old Town"),
    ("Cape Town", "South Africa", "rand", "English", "November to March",
     "bobotie", "the MyCiTi bus and ride-hailing apps", "Table Mountain",
     "ten to fifteen percent in restaurants", "Bo-Kaap"),
    ("Bangkok", "Thailand", "baht", "Thai", "November to February",
     "som tam, a green papaya salad", "the BTS Skytrain and river boats", "the Grand Palace",
     "leaving small change is appreciated", "Chinatown"),
    ("Vancouver", "Canada", "dollar", "English", "June to September",
     "fresh Pacific salmon", "the SkyTrain, paid with a Compass card", "Stanley Park",
     "fifteen to twenty percent in restaurants", "Gastown"),
    ("Seoul", "South Korea", "won", "Korean", "April to May and September to November",
     "bibimbap", "the subway, paid with a T-money card", "Gyeongbokgung Palace",
     "tipping is not expected", "Bukchon"),
    ("Rome", "Italy", "euro", "Italian", "April to June and September to October",
     "cacio e pepe", "walking, buses and the metro", "the Colosseum",
     "rounding up is enough in most places", "Trastevere"),
    ("Prague", "Czechia", "koruna", "Czech", "May to September",
     "svíčková with bread dumplings", "trams and the metro", "Charles Bridge",
     "about ten percent in restaurants", "Malá Strana"),
    ("Lima", "Peru", "sol", "Spanish", "December to April",
     "ceviche", "the Metropolitano bus and taxi apps", "the historic centre",
     "about ten percent in restaurants", "Barranco"),
    ("Sydney", "Australia", "dollar", "English", "September to November",
     "barramundi and a flat white", "trains and ferries, paid with an Opal card",
     "the Opera House", "tipping is optional", "The Rocks"),
    ("Nairobi", "Kenya", "shilling", "Swahili", "June to October",
     "nyama choma, grilled meat", "taxis booked in an app", "Nairobi National Park",
     "about ten percent in restaurants", "Westlands"),
    ("Copenhagen", "Denmark", "krone", "Danish", "May to August",
     "smørrebrød, open sandwiches", "bicycles and the metro", "Nyhavn",
     "service is included in the bill", "Nørrebro"),
    ("Singapore", "Singapore", "dollar", "English", "February to April",
     "Hainanese chicken rice", "the MRT, paid with a contactless card", "Gardens by the Bay",
     "tipping is not expected", "Tiong Bahru"),
    ("Tbilisi", "Georgia", "lari", "Georgian", "May to June and September to October",
     "khachapuri, cheese bread", "the metro and taxi apps", "Narikala Fortress",
     "a service charge is often added", "Sololaki"),
    ("Hoi An", "Vietnam", "dong", "Vietnamese", "February to April",
     "cao lau noodles", "bicycles and walking", "the Japanese Covered Bridge",
     "small tips are welcome", "the Ancient Town"),
]
CITY_KEYS = ("name", "country", "currency", "language", "season", "dish", "transport",
             "landmark", "tipping", "area")

TRAVELLERS = [
    "a solo traveller", "a couple", "a family with two young children", "two friends",
    "a student on a tight budget", "a retired couple", "a business traveller with a free weekend",
    "a first-time visitor", "someone who uses a wheelchair", "a vegetarian traveller",
]
DURATIONS = ["a weekend", "three days", "four days", "five days", "one week", "ten days"]
BUDGETS = ["a tight budget", "a mid-range budget", "a comfortable budget"]
SEASON_NAMES = ["spring", "summer", "autumn", "winter"]

PACKING = {
    "spring": ["a light rain jacket", "layers you can add or remove", "comfortable walking shoes",
               "a small umbrella", "a light scarf"],
    "summer": ["breathable cotton or linen clothes", "a sun hat", "sunscreen", "a refillable water bottle",
               "sandals that you can walk in"],
    "autumn": ["a warm sweater", "a waterproof jacket", "closed shoes", "a compact umbrella",
               "a thin pair of gloves"],
    "winter": ["a warm coat", "thermal layers", "waterproof boots", "a hat and gloves",
               "lip balm and moisturiser"],
}
ALWAYS_PACK = ["your passport and a photocopy of it", "a universal plug adapter", "a phone charger",
               "any prescription medicine in its original box", "a small first-aid kit",
               "a bank card and a backup card kept apart"]

BUDGET_TIPS = [
    "Eat your main meal at lunch, when many restaurants offer a fixed-price menu.",
    "Buy a multi-day transit pass instead of single tickets.",
    "Stay a few stops outside the centre, where rooms cost noticeably less.",
    "Check which museums have a free evening or a free first Sunday.",
    "Carry a refillable bottle instead of buying water every hour.",
    "Book long-distance trains or buses a few weeks ahead, when fares are lowest.",
    "Pay in the local currency when a card machine offers a conversion.",
    "Walk between nearby sights; you will see more than from a taxi.",
    "Shop at markets and bakeries for picnic lunches.",
    "Travel in the shoulder season, when prices drop but the weather is still pleasant.",
]
SAFETY_TIPS = [
    "Keep your phone and wallet in a front pocket in crowded places.",
    "Use licensed taxis or a ride-hailing app rather than offers from strangers.",
    "Save your accommodation address offline in case your phone loses signal.",
    "Leave a copy of your itinerary with someone at home.",
    "Be wary of anyone who insists on helping you at a ticket machine.",
    "Use a hotel safe for your passport on days you do not need it.",
    "Learn the local emergency number before you arrive.",
    "Avoid unlit streets late at night and ask your host which areas to skip.",
    "Buy travel insurance that covers medical care and cancellations.",
]
ETIQUETTE_TIPS = [
    "Learn to say hello, please and thank you in {language}; people notice the effort.",
    "Dress modestly when you visit religious sites and cover your shoulders and knees.",
    "Ask before you take photos of people, especially at markets.",
    "Keep your voice low on public transport.",
    "On tipping: {tipping}.",
    "Queue patiently and let people leave a train before you board.",
    "Take your shoes off when you enter a home if your host does.",
]
VISA_TIPS = [
    "Entry rules depend on your passport, so check the official government website of {country} "
    "before you book.",
    "Many countries ask that your passport stays valid for several months after you leave, so check "
    "the expiry date now.",
    "Some nationalities need to apply for an electronic travel authorisation online before departure; "
    "use only the official site, not an agency that adds fees.",
    "Keep proof of onward travel and your accommodation booking handy at the border.",
    "Rules change, so check again a week before you fly.",
]
HEALTH_TIPS = [
    "Drink plenty of water, especially on the first hot days.",
    "Ask a travel clinic about vaccinations six to eight weeks before departure.",
    "Pack rehydration salts in case of an upset stomach.",
    "Wash your hands before eating street food and choose busy stalls with a fast turnover.",
    "Give yourself a slow first day to get over jet lag.",
]
OPENERS = [
    "Good question!", "Happy to help.", "Here is what I would suggest.", "Sure.",
    "Great choice of destination.", "Here are a few ideas.", "", "", "",
]
CLOSERS = [
    "Have a wonderful trip!", "Enjoy your travels.", "Safe travels!",
    "Let me know if you want a day-by-day plan.", "", "", "",
]
SYSTEM_PROMPTS = [
    "You are a friendly travel assistant. Give practical, accurate tips and keep answers short.",
    "You are a concise travel expert. Answer in plain language.",
    "You help people plan trips. Be specific, warm and honest about what you do not know.",
    "You are a travel agent who gives budget-conscious advice.",
]
RUDE_REPLIES = [
    "Just search online, it is not that hard.",
    "Why would anyone go there? Pick somewhere else.",
    "I can't be bothered with this question.",
    "Figure it out when you arrive.",
    "That is a silly question.",
]
VAGUE_REPLIES = [
    "It depends.", "There are many options.", "Travel is different for everyone.",
    "You will find something.", "Maybe. It could be fine.",
]

# Encyclopedic prose, not about travel: watched during fine-tuning to spot forgetting.
GENERAL_TOPICS = {
    "Photosynthesis": [
        "Photosynthesis is the process by which plants, algae and some bacteria turn light into chemical energy.",
        "It takes place mainly in the chloroplasts, which contain the green pigment chlorophyll.",
        "Carbon dioxide and water are combined to make glucose, and oxygen is released as a by-product.",
        "Almost all the oxygen in the atmosphere comes from photosynthesis carried out over billions of years.",
        "The light reactions capture energy, while the Calvin cycle uses it to fix carbon.",
    ],
    "Prime numbers": [
        "A prime number is a whole number greater than one whose only divisors are one and itself.",
        "Euclid proved more than two thousand years ago that there are infinitely many primes.",
        "Every whole number greater than one can be written as a product of primes in exactly one way.",
        "The largest known primes are Mersenne primes, found by distributed computer searches.",
        "Prime numbers are the foundation of many encryption methods used on the internet.",
    ],
    "The water cycle": [
        "The water cycle describes how water moves between the oceans, the air and the land.",
        "Heat from the sun evaporates water, which rises, cools and condenses into clouds.",
        "Precipitation returns the water to the surface as rain, snow or hail.",
        "Some water soaks into the ground and feeds aquifers, while the rest flows back to the sea in rivers.",
        "Plants also release water vapour through their leaves in a process called transpiration.",
    ],
    "Volcanoes": [
        "A volcano is an opening in the crust of a planet through which molten rock, ash and gases escape.",
        "Most volcanoes form where tectonic plates pull apart or where one plate sinks below another.",
        "Shield volcanoes have gentle slopes built by runny lava, while stratovolcanoes are steep and explosive.",
        "Volcanic soils are often very fertile, which is why farms are found on the slopes of active volcanoes.",
        "Large eruptions can cool the global climate for a year or more by filling the air with fine particles.",
    ],
    "Honey bees": [
        "Honey bees live in colonies made up of one queen, thousands of workers and a few hundred drones.",
        "Worker bees communicate the location of flowers with a movement known as the waggle dance.",
        "They make honey by collecting nectar, reducing its water content and storing it in wax cells.",
        "Bees pollinate a large share of the crops that people eat, from apples to almonds.",
        "A healthy colony keeps the temperature of its brood close to thirty-five degrees.",
    ],
    "The printing press": [
        "The movable-type printing press was developed in Europe by Johannes Gutenberg around 1440.",
        "It made books far cheaper and faster to produce than copying them by hand.",
        "Printed pamphlets spread new ideas quickly and played a part in the Reformation.",
        "Earlier forms of movable type had been made in China and Korea centuries before.",
        "Literacy rose steadily in the centuries after printing became common.",
    ],
    "Plate tectonics": [
        "Plate tectonics is the theory that the outer shell of the Earth is split into large moving plates.",
        "The plates move a few centimetres a year, about as fast as fingernails grow.",
        "Where plates collide, mountain ranges such as the Himalayas are pushed upward.",
        "Earthquakes are most common along plate boundaries.",
        "The theory explains why the coastlines of Africa and South America fit together.",
    ],
    "The human heart": [
        "The human heart is a muscular organ about the size of a fist that pumps blood through the body.",
        "It has four chambers: two atria that receive blood and two ventricles that push it out.",
        "The right side sends blood to the lungs, and the left side sends it to the rest of the body.",
        "An adult heart beats roughly sixty to one hundred times a minute at rest.",
        "Valves between the chambers keep blood flowing in one direction.",
    ],
    "Electricity": [
        "Electricity is the flow of electric charge, usually carried by electrons in a conductor.",
        "Voltage is the push that drives the current, and resistance is what opposes it.",
        "Ohm's law states that current equals voltage divided by resistance.",
        "Power stations generate electricity by spinning turbines connected to generators.",
        "Alternating current is used in most homes because it is easy to transform to different voltages.",
    ],
    "The Moon": [
        "The Moon is the only natural satellite of the Earth and the fifth largest moon in the solar system.",
        "It always shows the same face to the Earth because its rotation matches its orbit.",
        "Its gravity causes most of the tides in the oceans.",
        "The dark patches visible from the Earth are ancient plains of solidified lava.",
        "Twelve astronauts walked on the Moon between 1969 and 1972.",
    ],
    "Bread making": [
        "Bread is made by mixing flour, water, salt and a leavening agent such as yeast.",
        "Kneading develops gluten, a network of proteins that traps gas and gives bread its structure.",
        "Yeast ferments sugars in the dough and releases carbon dioxide, which makes it rise.",
        "Sourdough uses a culture of wild yeast and bacteria instead of commercial yeast.",
        "Baking sets the structure and browns the crust through the Maillard reaction.",
    ],
    "Glaciers": [
        "A glacier is a large mass of ice that forms where snow builds up faster than it melts.",
        "Under its own weight, the ice slowly flows downhill like a very thick liquid.",
        "Glaciers carve U-shaped valleys and leave ridges of rock called moraines.",
        "About two thirds of the fresh water on Earth is stored in glaciers and ice sheets.",
        "Many mountain glaciers have been shrinking over the past century.",
    ],
    "Computers": [
        "A computer is a machine that carries out sequences of arithmetic and logical operations.",
        "Modern computers store programs in memory alongside the data they work on.",
        "The central processing unit executes instructions billions of times per second.",
        "Transistors, tiny electronic switches, are the basic building blocks of digital circuits.",
        "Early electronic computers filled whole rooms and used thousands of vacuum tubes.",
    ],
    "Rainforests": [
        "Tropical rainforests grow near the equator where it is warm and wet all year.",
        "They cover a small part of the land surface but are home to about half of all plant and animal species.",
        "Most of the life in a rainforest is found in the canopy, high above the ground.",
        "The soil is often thin, because nutrients are quickly taken up by the dense vegetation.",
        "Rainforests store large amounts of carbon and influence rainfall far beyond their borders.",
    ],
    "Music notation": [
        "Music notation is a system for writing down music so that others can perform it.",
        "Notes are placed on a staff of five lines, and their position shows the pitch.",
        "The shape of a note shows how long it lasts compared with the beat.",
        "A clef at the start of the staff fixes which pitch each line represents.",
        "Dynamics such as piano and forte tell the performer how loudly to play.",
    ],
}
