"""The small world the built-in tasks and the pretraining corpus both draw their facts from."""
from __future__ import annotations

from typing import NamedTuple


class Country(NamedTuple):
    name: str
    capital: str
    continent: str
    language: str
    currency: str  # the currency's common name, said as "the euro", "the yen"


class Animal(NamedTuple):
    name: str
    plural: str
    legs: int
    sound: str | None  # third-person verb ("barks"); None where no well-known sound
    habitat: str       # a place phrase that follows "lives in"
    diet: str          # herbivore, carnivore or omnivore
    cls: str           # mammal, bird, reptile, amphibian, fish, insect or arachnid


class Food(NamedTuple):
    name: str
    plural: str        # what follows "some": "apples", "milk"
    colour: str
    category: str      # fruit, vegetable or dairy (the cook's sense, not the botanist's)


class Product(NamedTuple):
    name: str
    cents: int


COUNTRIES: tuple[Country, ...] = tuple(Country(*row) for row in (
    ("France", "Paris", "Europe", "French", "euro"),
    ("Germany", "Berlin", "Europe", "German", "euro"),
    ("Spain", "Madrid", "Europe", "Spanish", "euro"),
    ("Italy", "Rome", "Europe", "Italian", "euro"),
    ("Portugal", "Lisbon", "Europe", "Portuguese", "euro"),
    ("Greece", "Athens", "Europe", "Greek", "euro"),
    ("Austria", "Vienna", "Europe", "German", "euro"),
    ("Ireland", "Dublin", "Europe", "English", "euro"),
    ("Finland", "Helsinki", "Europe", "Finnish", "euro"),
    ("Croatia", "Zagreb", "Europe", "Croatian", "euro"),
    ("Poland", "Warsaw", "Europe", "Polish", "zloty"),
    ("Sweden", "Stockholm", "Europe", "Swedish", "krona"),
    ("Norway", "Oslo", "Europe", "Norwegian", "krone"),
    ("Denmark", "Copenhagen", "Europe", "Danish", "krone"),
    ("Iceland", "Reykjavik", "Europe", "Icelandic", "krona"),
    ("Hungary", "Budapest", "Europe", "Hungarian", "forint"),
    ("Czechia", "Prague", "Europe", "Czech", "koruna"),
    ("Romania", "Bucharest", "Europe", "Romanian", "leu"),
    ("Japan", "Tokyo", "Asia", "Japanese", "yen"),
    ("China", "Beijing", "Asia", "Chinese", "yuan"),
    ("India", "New Delhi", "Asia", "Hindi", "rupee"),
    ("South Korea", "Seoul", "Asia", "Korean", "won"),
    ("Thailand", "Bangkok", "Asia", "Thai", "baht"),
    ("Vietnam", "Hanoi", "Asia", "Vietnamese", "dong"),
    ("Indonesia", "Jakarta", "Asia", "Indonesian", "rupiah"),
    ("Mongolia", "Ulaanbaatar", "Asia", "Mongolian", "tugrik"),
    ("Nepal", "Kathmandu", "Asia", "Nepali", "rupee"),
    ("Saudi Arabia", "Riyadh", "Asia", "Arabic", "riyal"),
    ("Iran", "Tehran", "Asia", "Persian", "rial"),
    ("Pakistan", "Islamabad", "Asia", "Urdu", "rupee"),
    ("Egypt", "Cairo", "Africa", "Arabic", "pound"),
    ("Kenya", "Nairobi", "Africa", "Swahili", "shilling"),
    ("Nigeria", "Abuja", "Africa", "English", "naira"),
    ("Morocco", "Rabat", "Africa", "Arabic", "dirham"),
    ("Ethiopia", "Addis Ababa", "Africa", "Amharic", "birr"),
    ("Ghana", "Accra", "Africa", "English", "cedi"),
    ("Mexico", "Mexico City", "North America", "Spanish", "peso"),
    ("Cuba", "Havana", "North America", "Spanish", "peso"),
    ("Jamaica", "Kingston", "North America", "English", "dollar"),
    ("Brazil", "Brasilia", "South America", "Portuguese", "real"),
    ("Argentina", "Buenos Aires", "South America", "Spanish", "peso"),
    ("Chile", "Santiago", "South America", "Spanish", "peso"),
    ("Peru", "Lima", "South America", "Spanish", "sol"),
    ("Colombia", "Bogota", "South America", "Spanish", "peso"),
    ("Venezuela", "Caracas", "South America", "Spanish", "bolivar"),
    ("Australia", "Canberra", "Oceania", "English", "dollar"),
    ("New Zealand", "Wellington", "Oceania", "English", "dollar"),
))

ANIMALS: tuple[Animal, ...] = tuple(Animal(*row) for row in (
    ("dog", "dogs", 4, "barks", "people's homes", "omnivore", "mammal"),
    ("cat", "cats", 4, "meows", "people's homes", "carnivore", "mammal"),
    ("cow", "cows", 4, "moos", "fields on farms", "herbivore", "mammal"),
    ("horse", "horses", 4, "neighs", "fields on farms", "herbivore", "mammal"),
    ("sheep", "sheep", 4, "bleats", "fields on farms", "herbivore", "mammal"),
    ("pig", "pigs", 4, "oinks", "pens on farms", "omnivore", "mammal"),
    ("lion", "lions", 4, "roars", "the savanna", "carnivore", "mammal"),
    ("elephant", "elephants", 4, "trumpets", "the savanna", "herbivore", "mammal"),
    ("giraffe", "giraffes", 4, None, "the savanna", "herbivore", "mammal"),
    ("zebra", "zebras", 4, None, "the savanna", "herbivore", "mammal"),
    ("bear", "bears", 4, "growls", "the forest", "omnivore", "mammal"),
    ("wolf", "wolves", 4, "howls", "the forest", "carnivore", "mammal"),
    ("fox", "foxes", 4, None, "the forest", "omnivore", "mammal"),
    ("rabbit", "rabbits", 4, None, "burrows in meadows", "herbivore", "mammal"),
    ("mouse", "mice", 4, "squeaks", "fields and houses", "omnivore", "mammal"),
    ("camel", "camels", 4, None, "the desert", "herbivore", "mammal"),
    ("whale", "whales", 0, "sings", "the ocean", "carnivore", "mammal"),
    ("dolphin", "dolphins", 0, "clicks", "the ocean", "carnivore", "mammal"),
    ("chicken", "chickens", 2, "clucks", "coops on farms", "omnivore", "bird"),
    ("duck", "ducks", 2, "quacks", "ponds", "omnivore", "bird"),
    ("owl", "owls", 2, "hoots", "the forest", "carnivore", "bird"),
    ("eagle", "eagles", 2, None, "the mountains", "carnivore", "bird"),
    ("penguin", "penguins", 2, None, "the southern hemisphere", "carnivore", "bird"),
    ("parrot", "parrots", 2, "squawks", "the rainforest", "herbivore", "bird"),
    ("snake", "snakes", 0, "hisses", "grasslands", "carnivore", "reptile"),
    ("crocodile", "crocodiles", 4, None, "rivers", "carnivore", "reptile"),
    ("turtle", "turtles", 4, None, "ponds and rivers", "omnivore", "reptile"),
    ("gecko", "geckos", 4, None, "warm forests", "carnivore", "reptile"),
    ("frog", "frogs", 4, "croaks", "ponds", "carnivore", "amphibian"),
    ("toad", "toads", 4, "croaks", "damp gardens", "carnivore", "amphibian"),
    ("salamander", "salamanders", 4, None, "damp forests", "carnivore", "amphibian"),
    ("salmon", "salmon", 0, None, "rivers and the sea", "carnivore", "fish"),
    ("shark", "sharks", 0, None, "the ocean", "carnivore", "fish"),
    ("goldfish", "goldfish", 0, None, "ponds", "omnivore", "fish"),
    ("bee", "bees", 6, "buzzes", "hives", "herbivore", "insect"),
    ("ant", "ants", 6, None, "nests in the ground", "omnivore", "insect"),
    ("butterfly", "butterflies", 6, None, "meadows", "herbivore", "insect"),
    ("spider", "spiders", 8, None, "webs in gardens", "carnivore", "arachnid"),
    ("scorpion", "scorpions", 8, None, "the desert", "carnivore", "arachnid"),
))

ANIMAL_CLASSES = ("mammal", "bird", "reptile", "amphibian", "fish", "insect", "arachnid")
DIET_FOOD = {"herbivore": "plants", "carnivore": "other animals",
             "omnivore": "both plants and animals"}

FOODS: tuple[Food, ...] = tuple(Food(*row) for row in (
    ("banana", "bananas", "yellow", "fruit"), ("lemon", "lemons", "yellow", "fruit"),
    ("orange", "oranges", "orange", "fruit"), ("strawberry", "strawberries", "red", "fruit"),
    ("cherry", "cherries", "red", "fruit"), ("blueberry", "blueberries", "blue", "fruit"),
    ("lime", "limes", "green", "fruit"), ("plum", "plums", "purple", "fruit"),
    ("raspberry", "raspberries", "red", "fruit"), ("mango", "mangoes", "yellow", "fruit"),
    ("carrot", "carrots", "orange", "vegetable"), ("broccoli", "broccoli", "green", "vegetable"),
    ("spinach", "spinach", "green", "vegetable"), ("cabbage", "cabbages", "green", "vegetable"),
    ("lettuce", "lettuce", "green", "vegetable"), ("pea", "peas", "green", "vegetable"),
    ("radish", "radishes", "red", "vegetable"), ("eggplant", "eggplants", "purple", "vegetable"),
    ("celery", "celery", "green", "vegetable"), ("milk", "milk", "white", "dairy"),
    ("cheese", "cheese", "yellow", "dairy"), ("butter", "butter", "yellow", "dairy"),
    ("yogurt", "yogurt", "white", "dairy"), ("cream", "cream", "white", "dairy"),
))
FOOD_CATEGORIES = ("fruit", "vegetable", "dairy")

PRODUCTS: tuple[Product, ...] = tuple(Product(*row) for row in (
    ("kettle", 2499), ("toaster", 3450), ("blender", 5999), ("lamp", 1899), ("umbrella", 1250),
    ("backpack", 4200), ("notebook", 350), ("mug", 899), ("teapot", 2150), ("scarf", 1575),
    ("candle", 650), ("clock", 2799), ("pillow", 1999), ("blanket", 3900), ("wallet", 2250),
    ("radio", 4599), ("jacket", 7900), ("towel", 1100), ("vase", 1725), ("basket", 1450),
))

# The one shop of this world, whose notices fill the corpus; task notices vary these facts.
SHOP = {"street": "Maple", "opens": "9 am", "closes": "6 pm", "saturday": "10 am to 4 pm",
        "closed_day": "Sunday", "return_days": 30, "shipping": "3 to 5 business days",
        "express": "1 business day", "phone": "555-0142"}
STREETS = ("Maple", "Oak", "Elm", "Cedar", "Pine", "Birch", "River", "Hill", "Station",
           "Market", "Church", "Park", "Lake", "Mill", "Bridge", "Garden", "Harbour", "Willow")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")

NAMES = ("Ana", "Omar", "Lena", "Kenji", "Priya", "Lucas", "Sofia", "Mateo", "Amara", "Noah",
         "Emma", "Liam", "Olivia", "Yusuf", "Fatima", "Chen", "Mei", "Ravi", "Aisha", "Diego",
         "Elena", "Hugo", "Ingrid", "Jonas", "Kofi", "Leila", "Marco", "Nadia", "Oscar", "Paula",
         "Quinn", "Rosa", "Samir", "Tariq", "Uma", "Victor", "Wanda", "Xavier", "Yara", "Zoe")

# Countable things for arithmetic stories: (singular, plural).
COUNTABLES = (("apple", "apples"), ("pear", "pears"), ("pencil", "pencils"),
              ("stamp", "stamps"), ("marble", "marbles"), ("book", "books"),
              ("cookie", "cookies"), ("sticker", "stickers"), ("shell", "shells"),
              ("card", "cards"), ("balloon", "balloons"), ("coin", "coins"))

POSITIVE_WORDS = ("excellent", "wonderful", "great", "lovely", "delightful", "fantastic",
                  "pleasant", "amazing", "superb", "brilliant", "charming", "reliable",
                  "comfortable", "friendly", "helpful", "delicious", "beautiful", "perfect",
                  "impressive", "enjoyable")
NEGATIVE_WORDS = ("terrible", "awful", "horrible", "poor", "disappointing", "broken", "rude",
                  "boring", "dreadful", "unpleasant", "noisy", "dirty", "flimsy", "useless",
                  "slow", "bland", "ugly", "annoying", "faulty", "uncomfortable")

TOPICS: dict[str, tuple[str, ...]] = {
    "sports": ("football", "tennis", "goal", "team", "coach", "stadium", "referee",
               "tournament", "striker", "marathon", "basketball", "league"),
    "weather": ("rain", "snow", "storm", "sunshine", "clouds", "forecast", "thunder", "wind",
                "temperature", "fog", "drizzle", "heatwave"),
    "food": ("recipe", "soup", "bakery", "chef", "dinner", "noodles", "dessert", "kitchen",
             "salad", "flavour", "breakfast", "spices"),
    "technology": ("computer", "software", "smartphone", "internet", "laptop", "robot",
                   "battery", "app", "algorithm", "network", "processor", "keyboard"),
    "music": ("guitar", "concert", "song", "drummer", "melody", "piano", "album", "choir",
              "violin", "lyrics", "orchestra", "singer"),
    "health": ("doctor", "fever", "vitamins", "exercise", "hospital", "nurse", "medicine",
               "sleep", "clinic", "vaccine", "headache", "pharmacy"),
}

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve")


def article(word: str) -> str:
    """'a' or 'an' by the first letter (good enough for this world's vocabulary)."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def dollars(cents: int) -> str:
    """1250 -> '$12.50'."""
    return f"${cents // 100}.{cents % 100:02d}"


def word_pool() -> tuple[str, ...]:
    """Every distinct lowercase alphabetic single word of the world, sorted (for string tasks)."""
    words = {a.name for a in ANIMALS} | {f.name for f in FOODS} | {p.name for p in PRODUCTS}
    words |= {c.name.lower() for c in COUNTRIES} | {c.capital.lower() for c in COUNTRIES}
    words |= {n.lower() for n in NAMES} | set(POSITIVE_WORDS) | set(NEGATIVE_WORDS)
    words |= {w for kws in TOPICS.values() for w in kws} | {s.lower() for s in STREETS}
    return tuple(sorted(w for w in words if w.isalpha() and w.isascii()))
